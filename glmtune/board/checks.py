"""What the board can tell about the form before anything runs: the model's family, the data's format, and every
bad value, each by the field it belongs to (the page shows it next to that field)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmtune.board.form import BY_KEY, OTHER, config_from_form, field_errors
from glmtune.errors import GlmtuneError

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
CHECKED_RECORDS = 2000  # records of each file validated before a run starts (the run validates them all)
GROUPS = ("model", "method", "data", "training")  # a value error without a field of its own goes to its section


@dataclass
class Checked:
    """The outcome of checking the form: the config when it is valid, else errors by field key or section."""

    raw: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # what was detected, by field key

    @property
    def ok(self) -> bool:
        return self.raw is not None and not self.errors


def describe_model(path: str) -> str:
    """ "ChatGLM3-6B (chatglm3), original layout" for a checkpoint directory; GlmtuneError when it is not one."""
    from glmtune.families import detect_family, read_config

    text = str(path or "").strip()
    if not text:
        raise GlmtuneError("model.path: required (a checkpoint directory)")
    directory = Path(text)
    if not directory.is_dir():
        raise GlmtuneError(f"model.path: {directory}: no such directory")
    if not (directory / "config.json").is_file():
        raise GlmtuneError(f"model.path: {directory}: has no config.json (not a checkpoint directory)")
    try:
        config = read_config(directory)
        family = detect_family(config, directory)
    except GlmtuneError as e:
        raise GlmtuneError(f"model.path: {e}") from None
    native = family.architecture == "native" or config.get("model_type") in ("glm", "chatglm_v1")
    layout = "native" if native else "original THUDM"
    return f"{family.title} (`{family.name}`), {layout} layout"


def describe_data(paths: list[str], fmt: str | None, columns: dict[str, Any] | None, key: str = "data.train") -> str:
    """ "FILE: format, N records" per path; GlmtuneError naming the file (and line) when one is unusable
    (unreadable, of no known format, or with an invalid record among the first :data:`CHECKED_RECORDS`)."""
    from glmtune.data.formats import detect, get_spec
    from glmtune.data.pipeline import normalize_records
    from glmtune.data.read import read_paths

    if not paths:
        raise GlmtuneError(f"{key}: required (one or more data files)")
    try:
        given = get_spec(fmt, columns)
    except GlmtuneError as e:
        raise GlmtuneError(f"data.columns: {e}") from None
    lines = []
    for p in paths:
        try:
            raws, issues = read_paths([p])
        except GlmtuneError as e:
            raise GlmtuneError(f"{key}: {e}") from None
        if issues:
            raise GlmtuneError(f"{key}: {issues[0]}")
        if not raws:
            raise GlmtuneError(f"{key}: {p}: no records")
        try:
            spec = given or detect(raws, p)
        except GlmtuneError as e:
            raise GlmtuneError(f"{key}: {e}") from None
        _, problems = normalize_records(raws[:CHECKED_RECORDS], spec)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise GlmtuneError(f"{key}: {problems[0]}{more}")
        lines.append(f"`{Path(p).name}`: {spec.name}, {len(raws)} records")
    return "; ".join(lines)


def _section_of(message: str) -> str:
    for group in GROUPS:
        if f"section {group}" in message or f"{group}." in message:
            return group
    return "training"


def check_form(values: dict[str, Any], run_name: str | None = None, touch_files: bool = True) -> Checked:
    """Every problem with the form at once; ``touch_files`` also reads the model's config and the data."""
    from glmtune.config import build_config

    out = Checked(errors=field_errors(values))
    if run_name is not None and not RUN_NAME.match(run_name.strip()):
        out.errors["run.name"] = "run name: letters, digits, '.', '_' and '-' only (at most 80)"
    if touch_files:
        try:
            out.notes["model.path"] = describe_model(values.get("model.path", ""))
        except GlmtuneError as e:
            out.errors["model.path"] = str(e)
    if out.errors:
        return out
    raw = config_from_form(values)
    data = raw.get("data", {})
    if touch_files:
        for key in ("train", "eval"):
            paths = data.get(key) or []
            if not paths and key == "eval":
                continue
            try:
                out.notes[f"data.{key}"] = describe_data(paths, data.get("format"), data.get("columns"), f"data.{key}")
            except GlmtuneError as e:
                target = "data.columns" if str(e).startswith("data.columns") else f"data.{key}"
                out.errors[target] = str(e)
    try:
        build_config(raw, source="board")
    except GlmtuneError as e:
        message = str(e).removeprefix("board: ")
        keys = [k for k in (f"{s}.{n}" for s in GROUPS for n in _names(raw, s)) if message.startswith(f"{k}:")]
        # a key without a field of its own came from the "other settings" box
        target = (keys[0] if keys[0] in BY_KEY else OTHER) if keys else _section_of(message)
        out.errors.setdefault(target, message)
    if not out.errors:
        out.raw = raw
    return out


def _names(raw: dict[str, Any], section: str) -> list[str]:
    return list(raw.get(section, {}))
