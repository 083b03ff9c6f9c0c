"""The configure form's fields and the two directions between them and a glmtune training YAML.

A form value is what a gradio component holds (text, a number or None, a bool, a choice). :func:`config_from_form`
turns the values (plus the "other settings" YAML for everything the form has no field for) into the sections
``glmtune train`` reads; :func:`form_from_config` does the reverse for a YAML the user starts from.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from glmtune.config.load import RENAMED_TRAINING_ARGS, SECTIONS, read_yaml
from glmtune.config.schema import METHODS
from glmtune.data.formats import FORMATS
from glmtune.data.pipeline import DEFAULT_MODE, MODES
from glmtune.data.render.modes import modes_reading
from glmtune.errors import GlmtuneError

LORA = ("lora", "qlora")


@dataclass(frozen=True)
class Field:
    """One input of the form: ``key`` is ``section.name`` in the YAML."""

    key: str
    label: str
    kind: str  # text | paths (one per line) | names (comma separated) | json | int | float | bool | choice
    default: Any = None
    choices: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()  # only written for these methods (all when empty)
    modes: tuple[str, ...] = ()  # only written for these data modes (all when empty)
    minimum: float | None = None  # numbers: the smallest valid value
    info: str = ""

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]

    @property
    def elem_id(self) -> str:
        return self.key.replace(".", "__")


UNSET = "0: the mode's default"


def _mode_length(name: str, label: str) -> Field:
    """A ``data.*`` length only some modes read (written only for them, as their settings say)."""
    return Field(f"data.{name}", label, "int", info=UNSET, modes=modes_reading(name), minimum=1)


FIELDS: tuple[Field, ...] = (
    Field("model.path", "Model directory", "text", info="original THUDM layout or native; its family is detected"),
    Field("model.dtype", "dtype", "choice", "auto", ("auto", "fp32", "bf16", "fp16")),
    Field("model.quantization_bit", "Quantization bits", "choice", "4", ("4", "8"), methods=("qlora",)),
    Field("method.name", "Method", "choice", "lora", METHODS),
    Field("method.lora_r", "LoRA rank", "int", 8, methods=LORA, minimum=1),
    Field("method.lora_alpha", "LoRA alpha", "int", 32, methods=LORA, minimum=1),
    Field("method.lora_dropout", "LoRA dropout", "float", 0.1, methods=LORA, minimum=0),
    Field("method.lora_targets", "LoRA targets", "names", methods=LORA, info="comma separated; empty: family default"),
    Field("method.pre_seq_len", "Prefix length", "int", 128, methods=("ptuning-v2",), minimum=1),
    Field("method.prefix_projection", "Prefix projection", "bool", False, methods=("ptuning-v2",)),
    Field("method.freeze_trainable_layers", "Trainable last layers", "int", 2, methods=("freeze",), minimum=1),
    Field("method.freeze_trainable_modules", "Trainable modules", "names", methods=("freeze",)),
    Field("data.train", "Training data", "paths", info="one file or directory per line"),
    Field("data.eval", "Evaluation data", "paths", info="optional; one per line"),
    Field("data.format", "Format", "choice", "auto", ("auto", *FORMATS), info="auto: detected per file"),
    Field("data.columns", "Column mapping", "json", info='JSON, e.g. {"prompt": "question", "response": "answer"}'),
    Field("data.mode", "Data mode", "choice", "default", MODES),
    Field("data.max_length", "Max length", "int", 1024, minimum=1),
    _mode_length("max_source_length", "Max source length"),
    _mode_length("max_target_length", "Max target length"),
    _mode_length("max_input_length", "Max input length"),
    _mode_length("max_output_length", "Max output length"),
    Field("data.mask_history", "Train only the last reply", "bool", False, modes=modes_reading("mask_history")),
    Field("data.pack", "Pack samples", "bool", False, modes=(DEFAULT_MODE,)),
    Field("training.output_dir", "Output directory", "text", info="empty: the run's directory under the board's"),
    Field("training.max_steps", "Max steps", "int", 1000, info="-1: train num_train_epochs epochs"),
    Field("training.num_train_epochs", "Epochs", "float", 3.0, minimum=0),
    Field("training.learning_rate", "Learning rate", "float", 2e-4, minimum=0),
    Field("training.per_device_train_batch_size", "Batch size per device", "int", 4, minimum=1),
    Field("training.gradient_accumulation_steps", "Gradient accumulation", "int", 1, minimum=1),
    Field(
        "training.lr_scheduler_type",
        "LR schedule",
        "choice",
        "cosine",
        ("linear", "cosine", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt"),
    ),
    Field("training.warmup_steps", "Warmup steps", "float", 0, minimum=0, info="below 1: a fraction of the steps"),
    Field("training.logging_steps", "Log every N steps", "int", 10, minimum=1),
    Field("training.save_steps", "Checkpoint every N steps", "int", 100, minimum=1),
    Field("training.save_total_limit", "Checkpoints kept", "int", 3, minimum=1),
    Field("training.eval_strategy", "Evaluate", "choice", "no", ("no", "steps", "epoch")),
    Field("training.eval_steps", "Evaluate every N steps", "int", 100, minimum=1),
    Field("training.seed", "Seed", "int", 42, minimum=0),
    Field("training.bf16", "bf16", "bool", False),
    Field("training.fp16", "fp16", "bool", False),
    Field("training.activation_checkpointing", "Gradient checkpointing", "bool", False),
)
BY_KEY = {f.key: f for f in FIELDS}
OTHER = "other"  # the key of the "other settings" YAML box


def defaults() -> dict[str, Any]:
    """The form's initial values."""
    return {f.key: _to_form(f, f.default) for f in FIELDS} | {OTHER: ""}


def _to_form(f: Field, value: Any) -> Any:
    """A config value as its component holds it."""
    if value is None:
        return f.default if f.kind == "choice" else ("" if f.kind in ("text", "paths", "names", "json") else None)
    if f.kind == "paths":
        return "\n".join(str(v) for v in (value if isinstance(value, list) else [value]))
    if f.kind == "names":
        return ", ".join(str(v) for v in (value if isinstance(value, list) else [value]))
    if f.kind == "json":
        return json.dumps(value, ensure_ascii=False) if value else ""
    if f.kind == "choice":
        return str(value)
    if f.kind == "bool":
        return bool(value)
    return value


def _from_form(f: Field, value: Any) -> Any:
    """A component's value as the config holds it; None when it is not set (the field is left out)."""
    if f.kind in ("text", "json", "paths", "names"):
        text = str(value or "").strip()
        if not text:
            return None
        if f.kind == "paths":
            return [line.strip() for line in text.splitlines() if line.strip()]
        if f.kind == "names":
            return [part.strip() for part in text.split(",") if part.strip()]
        if f.kind == "json":
            try:
                return json.loads(text)
            except json.JSONDecodeError as e:
                raise GlmtuneError(f"{f.key}: invalid JSON: {e.msg} (column {e.colno})") from None
        return text
    if f.kind == "choice":
        if value in (None, "", "auto") and f.key == "data.format":
            return None
        return int(value) if f.key == "model.quantization_bit" else value
    if f.kind == "bool":
        return bool(value)
    if value is None or value == "" or (value == 0 and f.default is None):
        return None  # a number box cannot be empty: 0 stands for "not set" where the setting is optional
    number = float(value)
    if f.kind == "int":
        if number != int(number):
            raise GlmtuneError(f"{f.key}: {value} is not a whole number")
        return int(number)
    return number


def field_errors(values: dict[str, Any]) -> dict[str, str]:
    """Values the form itself can tell are wrong (unparsable, below a field's minimum), by field key."""
    errors: dict[str, str] = {}
    for f in FIELDS:
        if not applies(f, values):
            continue
        try:
            value = _from_form(f, values.get(f.key))
        except (GlmtuneError, TypeError, ValueError) as e:
            errors[f.key] = str(e) if isinstance(e, GlmtuneError) else f"{f.key}: not a number"
            continue
        if f.minimum is not None and value is not None and value < f.minimum:
            errors[f.key] = f"{f.key}: must be at least {f.minimum:g}"
        if f.kind == "json" and value is not None and not isinstance(value, dict):
            errors[f.key] = f"{f.key}: expected a JSON object"
    try:
        other_sections(values.get(OTHER, ""))
    except GlmtuneError as e:
        errors[OTHER] = str(e)
    return errors


def other_sections(text: str) -> dict[str, dict[str, Any]]:
    """The "other settings" box: YAML sections merged over the form's fields."""
    if not str(text or "").strip():
        return {}
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise GlmtuneError(f"other settings{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise GlmtuneError("other settings: expected sections, e.g. training: {weight_decay: 0.01}")
    unknown = [k for k in raw if k not in SECTIONS and k != "generation"]
    if unknown:
        known = ", ".join([*SECTIONS, "generation"])
        raise GlmtuneError(f"other settings: unknown section {unknown[0]!r} ({known})")
    return raw


def applies(f: Field, values: dict[str, Any]) -> bool:
    """Whether ``f`` belongs to the chosen method and data mode (the page hides it otherwise)."""
    method = values.get("method.name") or "lora"
    mode = values.get("data.mode") or "default"
    return (not f.methods or method in f.methods) and (not f.modes or mode in f.modes)


def config_from_form(values: dict[str, Any]) -> dict[str, Any]:
    """The YAML sections for the form's values (raises :class:`GlmtuneError` on the first bad value)."""
    raw: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "method": {}, "training": {}}
    for f in FIELDS:
        if not applies(f, values):
            continue
        value = _from_form(f, values.get(f.key))
        if value is not None:
            raw[f.section][f.name] = value
    if raw["training"].get("max_steps", -1) > 0:
        raw["training"].pop("num_train_epochs", None)
    if raw["training"].get("eval_strategy") == "no":
        raw["training"].pop("eval_steps", None)
    for section, body in other_sections(values.get(OTHER, "")).items():
        raw.setdefault(section, {}).update(body)
    return {k: v for k, v in raw.items() if v}


def form_from_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Form values for YAML sections; what the form has no field for goes to the "other settings" box."""
    sections = {k: dict(v or {}) for k, v in raw.items()}
    training = sections.get("training", {})
    aliases = {**RENAMED_TRAINING_ARGS, "gradient_checkpointing": "activation_checkpointing"}
    for old, new in aliases.items():
        if old in training:
            training.setdefault(new, training.pop(old))
    values = defaults()
    for f in FIELDS:
        body = sections.get(f.section, {})
        values[f.key] = _to_form(f, body.pop(f.name) if f.name in body else schema_default(f))
    rest = {k: v for k, v in sections.items() if v}
    values[OTHER] = yaml.safe_dump(rest, sort_keys=False, allow_unicode=True) if rest else ""
    return values


def schema_default(f: Field) -> Any:
    """What ``glmtune train`` uses when the YAML leaves ``f`` out."""
    for spec in dataclasses.fields(SECTIONS[f.section]):
        if spec.name == f.name:
            if spec.default is not dataclasses.MISSING:
                value = spec.default
            elif spec.default_factory is not dataclasses.MISSING:
                value = spec.default_factory()
            else:
                return None
            return getattr(value, "value", value)  # TrainingArguments enums
    return None


def to_yaml(raw: dict[str, Any]) -> str:
    """YAML text of config sections, in the order model, data, method, training, generation."""
    order = [*SECTIONS, "generation"]
    ordered = {k: raw[k] for k in order if k in raw}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, default_flow_style=False)


def is_glmtune_config(raw: dict[str, Any]) -> bool:
    """A glmtune YAML (sections), not an official finetune_demo one."""
    return bool(raw) and all(k in SECTIONS or k == "generation" for k in raw)


def find_configs(roots: list[Path]) -> list[str]:
    """The glmtune YAMLs under ``roots`` (configs/ directories), as paths to show in a dropdown."""
    found: dict[str, None] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.yaml")):
            try:
                if is_glmtune_config(read_yaml(path)):
                    found[str(path)] = None
            except GlmtuneError:
                continue
    return list(found)


def load_yaml_form(path: str | Path) -> dict[str, Any]:
    """Form values from a YAML file; data paths are resolved as ``glmtune train`` resolves them."""
    from glmtune.config.load import resolve_data_path

    path = Path(str(path).strip())
    raw = read_yaml(path)
    if not is_glmtune_config(raw):
        raise GlmtuneError(
            f"{path}: not a glmtune config (sections model/data/method/training); an official finetune_demo "
            "YAML runs as: glmtune train DATA_DIR MODEL_DIR CONFIG.yaml"
        )
    data = raw.get("data") or {}
    base = path.resolve().parent
    for key in ("train", "eval", "test"):
        if key in data:
            items = data[key] if isinstance(data[key], list) else [data[key]]
            data[key] = [resolve_data_path(str(p), base) for p in items]
    return form_from_config(raw)
