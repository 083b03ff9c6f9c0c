"""Read a training config (YAML) with overrides, and say clearly what is wrong with it."""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from glmtune.config.schema import (
    METHODS,
    DataConfig,
    GlmtuneTrainingArguments,
    MethodConfig,
    ModelConfig,
    TrainConfig,
)
from glmtune.data.render.modes import get_mode
from glmtune.errors import GlmtuneError

SECTIONS = {"model": ModelConfig, "data": DataConfig, "method": MethodConfig, "training": GlmtuneTrainingArguments}
# names older transformers (and the official YAMLs) use that transformers 5 no longer has; ``gradient_checkpointing``
# is not here: transformers 5 keeps it as an alias of ``activation_checkpointing`` and resolves it itself
RENAMED_TRAINING_ARGS = {
    "evaluation_strategy": "eval_strategy",
    "no_cuda": "use_cpu",
    "warmup_ratio": "warmup_steps",
}
LIST_FIELDS = {("data", "train"), ("data", "eval"), ("data", "test")}


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars, as ruamel (used by the official finetune_demo) reads them: ``5e-5`` is a number (PyYAML's
    1.1 rules read it as a string) and only true/false are booleans (``no``, ``off``, ``y`` stay strings, so
    ``--training.eval_strategy no`` means ``"no"``)."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``, with file:line errors."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise GlmtuneError(f"{path}: cannot read config ({e.strerror})") from None
    try:
        data = _yaml(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise GlmtuneError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise GlmtuneError(f"{path}: the config must be a mapping of sections")
    return data


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _did_you_mean(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``--section.key value`` / ``--key value`` / ``--key=value`` pairs; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise GlmtuneError(f"unexpected argument {arg!r}: overrides look like --training.learning_rate 1e-4")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                value = "true"
            else:
                i += 1
                value = args[i]
        out[key.replace("-", "_")] = _yaml(value) if value != "" else ""
        i += 1
    return out


def _place_override(sections: dict[str, dict[str, Any]], key: str, value: Any) -> None:
    if "." in key:
        section, name = key.split(".", 1)
        if section not in SECTIONS and section != "generation":
            raise GlmtuneError(f"override --{key}: unknown section {section!r}{_did_you_mean(section, list(SECTIONS))}")
        sections.setdefault(section, {})[name] = value
        return
    owners = [s for s, cls in SECTIONS.items() if key in _field_names(cls)]
    if key == "method":
        owners = ["method"]
        key = "name"
    if not owners:
        all_names = [n for cls in SECTIONS.values() for n in _field_names(cls)]
        raise GlmtuneError(f"override --{key}: unknown option{_did_you_mean(key, all_names)}")
    sections.setdefault(owners[0], {})[key] = value


def build_config(raw: dict[str, Any], overrides: dict[str, Any] | None = None, source: str = "") -> TrainConfig:
    """Validate sections, apply overrides, construct the dataclasses."""
    sections: dict[str, dict[str, Any]] = {}
    for name, body in raw.items():
        if name not in SECTIONS and name != "generation":
            raise GlmtuneError(f"{source}: unknown section {name!r}{_did_you_mean(name, [*SECTIONS, 'generation'])}")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise GlmtuneError(f"{source}: section {name!r} must be a mapping")
        sections[name] = dict(body)
    for key, value in (overrides or {}).items():
        _place_override(sections, key, value)
    generation = sections.pop("generation", {})
    training = sections.get("training", {})
    for old, new in RENAMED_TRAINING_ARGS.items():
        if old in training:
            training.setdefault(new, training.pop(old))
    if training.pop("group_by_length", False):  # a TrainingArguments flag before transformers 5
        training.setdefault("train_sampling_strategy", "group_by_length")
    if isinstance(training.get("generation_config"), dict):
        generation = {**training.pop("generation_config"), **generation}
    built: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        body = sections.get(name, {})
        names = _field_names(cls)
        for key in body:
            if key not in names:
                raise GlmtuneError(f"{source}: {name}.{key}: unknown option{_did_you_mean(key, names)}")
        for key in list(body):
            if (name, key) in LIST_FIELDS:
                body[key] = _paths(body[key], f"{source}: {name}.{key}")
        if cls is GlmtuneTrainingArguments:
            body.setdefault("output_dir", "runs/train")
            body.setdefault("report_to", "none")
        try:
            built[name] = cls(**body)
        except (TypeError, ValueError) as e:
            raise GlmtuneError(f"{source}: section {name}: {e}") from None
    method: MethodConfig = built["method"]
    if method.name not in METHODS:
        raise GlmtuneError(
            f"{source}: method.name {method.name!r} is not a method{_did_you_mean(method.name, list(METHODS))}"
            f"; choose one of {', '.join(METHODS)}"
        )
    if not built["model"].path:
        raise GlmtuneError(f"{source}: model.path is required (a checkpoint directory)")
    if not built["data"].train and not built["data"].dataset_info:
        raise GlmtuneError(f"{source}: data.train is required (one or more data files)")
    try:  # the mode checks its own settings now, before a model is loaded (its columns come with the data)
        get_mode(built["data"].mode, "data.mode").from_config(built["data"])
    except GlmtuneError as e:
        raise GlmtuneError(f"{source}: {e}") from None
    return TrainConfig(
        model=built["model"],
        data=built["data"],
        method=method,
        training=built["training"],
        generation=generation,
        source=source,
    )


def _paths(value: Any, where: str) -> list[str]:
    """A list of data paths from a path, a list of paths, or null/empty (none)."""
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise GlmtuneError(f"{where}: expected a data file path or a list of paths, got {value!r}")


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from a glmtune YAML file plus command-line overrides."""
    raw = read_yaml(Path(path))
    cfg = build_config(raw, parse_overrides(overrides or []), source=str(path))
    base = Path(path).resolve().parent
    cfg.data.train = [resolve_data_path(p, base) for p in cfg.data.train]
    cfg.data.eval = [resolve_data_path(p, base) for p in cfg.data.eval]
    cfg.data.test = [resolve_data_path(p, base) for p in cfg.data.test]
    if cfg.data.dataset_info:  # FILE:NAME, the file found like the data files
        file, sep, name = cfg.data.dataset_info.rpartition(":")
        cfg.data.dataset_info = f"{resolve_data_path(file, base)}{sep}{name}" if sep else cfg.data.dataset_info
    return cfg


def resolve_data_path(p: str, base: Path) -> str:
    """Data paths are relative to the working directory; fall back to the config's directory."""
    path = Path(p)
    if path.is_absolute() or path.exists():
        return str(path)
    candidate = base / path
    return str(candidate) if candidate.exists() else str(path)
