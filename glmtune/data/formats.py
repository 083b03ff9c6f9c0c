"""Record formats: detect which one a file uses, and normalise every record to messages.

Two shapes cover every format, with LLaMA-Factory's ``dataset_info.json`` column/tag names:

* ``pairs``: ``prompt`` (+ ``query``), ``response``, optional ``history`` ([[q, r], ...]), ``system``, ``tools``
  — alpaca (instruction/input/output), input/output, prompt/response(/history), ADGEN content/summary;
* ``messages``: a list of messages with a role tag and a content tag — ChatGLM3 ``conversations``, GLM-4/OpenAI
  ``messages``, sharegpt ``{"from", "value"}``.

A user's LLaMA-Factory ``dataset_info.json`` entry works as the mapping (:func:`spec_from_dataset_info`).
Turning a record into messages under a spec is :mod:`glmtune.data.normalize`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from glmtune.data.record import RawRecord
from glmtune.errors import GlmtuneError

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<missing>"})()
"""Stands for a field absent from the record (validation reports it)."""

_SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
_ROLE_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "observation",
    "function_tag": "",
    "system_tag": "system",
    "tool_tag": "tool",
}


@dataclass(frozen=True)
class FormatSpec:
    """How the fields of one record format map onto messages."""

    name: str
    shape: str  # "pairs" | "messages"
    columns: dict[str, str | None] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def col(self, key: str) -> str | None:
        return self.columns.get(key)

    @cached_property
    def roles(self) -> dict[str, str]:
        """Role values of the data → our roles (``function_call``/``tool`` are converted while normalising)."""
        return role_map(self.tags)


FORMATS: dict[str, FormatSpec] = {
    "chatglm3": FormatSpec("chatglm3", "messages", {"messages": "conversations", "tools": "tools"}, _ROLE_TAGS),
    "glm4": FormatSpec("glm4", "messages", {"messages": "messages", "tools": "tools"}, _ROLE_TAGS),
    "sharegpt": FormatSpec(
        "sharegpt", "messages", {"messages": "conversations", "system": "system", "tools": "tools"}, _SHAREGPT_TAGS
    ),
    "alpaca": FormatSpec(
        "alpaca",
        "pairs",
        {"prompt": "instruction", "query": "input", "response": "output", "history": "history", "system": "system"},
    ),
    "input-output": FormatSpec("input-output", "pairs", {"prompt": "input", "response": "output"}),
    "prompt-response": FormatSpec(
        "prompt-response", "pairs", {"prompt": "prompt", "response": "response", "history": "history"}
    ),
    "adgen": FormatSpec("adgen", "pairs", {"prompt": "content", "response": "summary"}),
}


# ---------------------------------------------------------------------------------------------------- specs
def get_spec(fmt: str | FormatSpec | None, columns: dict[str, Any] | None = None) -> FormatSpec | None:
    """The spec of a named format with ``columns`` overrides (our keys or a LLaMA-Factory entry); None = detect."""
    if isinstance(fmt, FormatSpec):
        spec: FormatSpec | None = fmt
    elif fmt is None:
        spec = None
    elif fmt in FORMATS:
        spec = FORMATS[fmt]
    else:
        raise GlmtuneError(f"unknown data format {fmt!r}; known: {', '.join(FORMATS)}")
    if columns:
        if "formatting" in columns or "tags" in columns or isinstance(columns.get("columns"), dict):
            entry_spec = spec_from_entry(columns)
            return entry_spec if spec is None else replace(entry_spec, name=spec.name)
        if spec is None:
            raise GlmtuneError("column names given without a format: pass --format too")
        cols = {**spec.columns, **{k: v for k, v in columns.items() if not k.endswith("_tag")}}
        tags = {**spec.tags, **{k: v for k, v in columns.items() if k.endswith("_tag")}}
        spec = replace(spec, columns=cols, tags=tags)
    return spec


def spec_from_entry(entry: dict[str, Any], name: str = "dataset_info") -> FormatSpec:
    """A spec from one LLaMA-Factory ``dataset_info.json`` entry (``formatting``, ``columns``, ``tags``)."""
    formatting = entry.get("formatting", "alpaca")
    columns = dict(entry.get("columns") or {})
    if formatting == "alpaca":
        cols = {"prompt": "instruction", "query": "input", "response": "output", "history": None, "system": None}
        cols.update(columns)
        return FormatSpec(name, "pairs", cols, {})
    if formatting in ("sharegpt", "openai"):
        tags = dict(_SHAREGPT_TAGS)
        tags["tool_tag"] = ""
        tags.update(entry.get("tags") or {})
        cols = {"messages": "conversations", "system": None, "tools": None}
        cols.update(columns)
        return FormatSpec(name, "messages", cols, tags)
    raise GlmtuneError(f"dataset_info entry {name!r}: formatting {formatting!r} is not supported (alpaca, sharegpt)")


def spec_from_dataset_info(path: str | Path, name: str) -> tuple[FormatSpec, Path | None]:
    """The spec and data file of entry ``name`` of a LLaMA-Factory ``dataset_info.json``."""
    path = Path(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise GlmtuneError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise GlmtuneError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(info, dict) or name not in info:
        known = ", ".join(sorted(info)) if isinstance(info, dict) else "none"
        raise GlmtuneError(f"{path}: no dataset {name!r} (entries: {known})")
    entry = info[name]
    file_name = entry.get("file_name")
    return spec_from_entry(entry, name), (path.parent / file_name) if file_name else None


# ---------------------------------------------------------------------------------------------------- detection
def classify(obj: Any) -> tuple[str | None, bool]:
    """(format name or None, sure) for one raw record; ``sure`` is False when an empty list left it open."""
    if not isinstance(obj, dict):
        return None, False
    for key, role_fmt in (("conversations", "chatglm3"), ("messages", "glm4")):
        value = maybe_json(obj.get(key))
        if isinstance(value, list):
            for m in value:
                if isinstance(m, dict):
                    if "from" in m or "value" in m:
                        return "sharegpt" if key == "conversations" else "sharegpt-messages", True
                    if "role" in m:
                        return role_fmt, True
            return role_fmt, False
    if "instruction" in obj:
        return "alpaca", True
    if "content" in obj and "summary" in obj:
        return "adgen", True
    if "prompt" in obj and "response" in obj:
        return "prompt-response", True
    if "input" in obj and ("output" in obj or "target" in obj):
        return "input-output" if "output" in obj else "input-target", True
    return None, False


def detect(records: list[RawRecord], where: str, sample: int = 200) -> FormatSpec:
    """The format of a file from its first records; an error naming the keys seen when none fits."""
    weak: str | None = None
    keys: dict[str, None] = {}
    for raw in records[:sample]:
        name, sure = classify(raw.data)
        if isinstance(raw.data, dict):
            keys.update(dict.fromkeys(raw.data))
        if name and sure:
            return _named(name)
        weak = weak or name
    if weak:
        return _named(weak)
    seen = ", ".join(sorted(keys)) if keys else "no JSON objects"
    raise GlmtuneError(
        f"{where}: cannot tell the data format from the keys seen ({seen}); name it with --format "
        f"({', '.join(FORMATS)}) and map columns with --columns if they are named differently"
    )


_DETECTED_VARIANTS = {
    "sharegpt-messages": replace(FORMATS["sharegpt"], columns={**FORMATS["sharegpt"].columns, "messages": "messages"}),
    "input-target": replace(FORMATS["input-output"], columns={"prompt": "input", "response": "target"}),
}
"""Shapes detection recognises that are a named format with other column names."""


def _named(name: str) -> FormatSpec:
    return _DETECTED_VARIANTS.get(name) or FORMATS[name]


# ---------------------------------------------------------------------------------------------------- helpers
def maybe_json(value: Any) -> Any:
    """Lists/objects stored as JSON text (CSV cells, sharegpt ``tools``) are parsed; anything else is kept."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def role_map(tags: dict[str, str]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for tag, role in (
        ("user_tag", "user"),
        ("assistant_tag", "assistant"),
        ("system_tag", "system"),
        ("observation_tag", "observation"),
        ("function_tag", "function_call"),
        ("tool_tag", "tool"),
    ):
        if tags.get(tag):
            roles.setdefault(tags[tag], role)
    return roles
