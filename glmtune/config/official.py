"""The official ChatGLM3 ``finetune_demo`` and GLM-4 ``finetune`` command lines and YAMLs, mapped onto a glmtune config.

``python finetune_hf.py DATA_DIR MODEL_DIR configs/lora.yaml [yes|N]`` (ChatGLM3) and
``python finetune.py DATA_DIR MODEL_DIR configs/lora.yaml [yes|N]`` (GLM-4) become
``glmtune train DATA_DIR MODEL_DIR configs/lora.yaml [yes|N]`` with the YAML unchanged: ``data_config``
(train/val/test file + num_proc), ``max_input_length``/``max_output_length``, ``training_args`` (old names such as
``evaluation_strategy`` accepted, ``generation_config`` included) and ``peft_config`` (``LORA``, ``PREFIX_TUNING``
= the official P-Tuning v2, or absent = full fine-tuning). As in that script, gradient checkpointing is on and
evaluation uses the first 50 validation records.

GLM-4's extra keys keep their official meaning: ``combine: true`` makes each conversation one sample whose last
assistant reply is learned (``data.mask_history``), ``false`` learns every reply; ``freezeV`` freezes GLM-4V's
vision encoder, which a text model does not have (a note says so); ``swanlab`` picks the SwanLab mode, which glmtune
does not report to unless ``training_args.report_to`` names it; ``training_args.deepspeed`` is found next to the
config as the official ``configs/…`` path means, and dropped with a note without a CUDA GPU and DeepSpeed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glmtune.config.load import build_config, parse_overrides, read_yaml
from glmtune.config.schema import TrainConfig
from glmtune.errors import GlmtuneError

OFFICIAL_KEYS = {
    "data_config",
    "max_input_length",
    "max_output_length",
    "training_args",
    "peft_config",
    "combine",  # GLM-4
    "freezeV",  # GLM-4 (GLM-4V)
    "swanlab",  # GLM-4 (current finetune/)
}


def is_official_config(raw: dict[str, Any]) -> bool:
    return "data_config" in raw or "training_args" in raw


def official_to_glmtune(
    raw: dict[str, Any], data_dir: Path, model_dir: Path, source: str, notes: list[str] | None = None
) -> dict[str, Any]:
    """The glmtune sections equivalent to an official finetune_demo YAML; ``notes`` collects the keys that cannot
    apply here, and why."""
    notes = notes if notes is not None else []
    unknown = set(raw) - OFFICIAL_KEYS
    if unknown:
        raise GlmtuneError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))} in a finetune_demo config "
            f"(known: {', '.join(sorted(OFFICIAL_KEYS))})"
        )
    data_cfg = raw.get("data_config") or {}
    if "train_file" not in data_cfg:
        raise GlmtuneError(f"{source}: data_config.train_file is required")
    for key in ("train_file", "val_file", "test_file"):
        name = data_cfg.get(key)
        if name and not (data_dir / name).exists():
            present = sorted(p.name for p in data_dir.iterdir()) if data_dir.is_dir() else []
            raise GlmtuneError(
                f"{data_dir / name}: no such file (data_config.{key} of {source}; DATA_DIR holds "
                f"{', '.join(present[:8]) + (' ...' if len(present) > 8 else '') if present else 'nothing'})"
            )
    data: dict[str, Any] = {"train": [str(data_dir / data_cfg["train_file"])], "mode": "default"}
    training = dict(raw.get("training_args") or {})
    if data_cfg.get("val_file") and training.get("do_eval", True) is not False:
        data["eval"] = [str(data_dir / data_cfg["val_file"])]
        data["max_eval_samples"] = 50
    else:
        training["eval_strategy"] = "no"
        training.pop("evaluation_strategy", None)
    if data_cfg.get("test_file"):
        data["test"] = [str(data_dir / data_cfg["test_file"])]
    if data_cfg.get("num_proc"):
        data["num_proc"] = _whole(data_cfg["num_proc"], f"{source}: data_config.num_proc")
    for key in ("max_input_length", "max_output_length"):
        if key not in raw:
            raise GlmtuneError(f"{source}: {key} is required")
        data[key] = _whole(raw[key], f"{source}: {key}")
    data["max_length"] = data["max_input_length"] + data["max_output_length"] + 1
    for key in ("combine", "freezeV"):
        if key in raw and not isinstance(raw[key], bool):
            raise GlmtuneError(f"{source}: {key}: expected true or false, got {raw[key]!r}")
    if raw.get("combine"):
        data["mask_history"] = True
    if raw.get("freezeV"):
        notes.append(
            "freezeV: the official script freezes GLM-4V's vision encoder; this text model has none (nothing to freeze)"
        )
    swanlab = raw.get("swanlab")
    if swanlab is not None and str(swanlab).lower() != "disabled":
        notes.append(
            f"swanlab: {swanlab}: glmtune reports only to training_args.report_to (report_to: swanlab, with the "
            "swanlab package installed, sends the run to SwanLab)"
        )
    if training.get("deepspeed"):
        _deepspeed(training, Path(source), notes)
    training.setdefault("activation_checkpointing", True)
    training.setdefault("remove_unused_columns", False)
    return {
        "model": {"path": str(model_dir)},
        "data": data,
        "method": _method(raw.get("peft_config"), source, notes),
        "training": training,
    }


def _deepspeed(training: dict[str, Any], config: Path, notes: list[str]) -> None:
    """``training_args.deepspeed``: the official ``configs/ds_zero_2.json`` is relative to the directory the
    official script runs in (the config's parent); dropped, with a note, without a CUDA GPU or the deepspeed
    package (DeepSpeed's CPU path needs MPI and is no way to fine-tune)."""
    import importlib.util

    import torch

    value = training["deepspeed"]
    if not torch.cuda.is_available() or importlib.util.find_spec("deepspeed") is None:
        training.pop("deepspeed")
        missing = "no CUDA GPU" if not torch.cuda.is_available() else "the deepspeed package is not installed"
        notes.append(f"training_args.deepspeed: {value}: {missing}, training without DeepSpeed")
        return
    if not isinstance(value, str):
        return  # an inline DeepSpeed config (a mapping) goes to transformers as it is
    for candidate in (Path(value), config.parent / value, config.parent.parent / value):
        if candidate.is_file():
            training["deepspeed"] = str(candidate)
            return
    raise GlmtuneError(f"{config}: training_args.deepspeed: {value}: no such file (next to the config or here)")


def _method(peft: dict[str, Any] | None, source: str, notes: list[str]) -> dict[str, Any]:
    if not peft:
        return {"name": "full"}
    kind = str(peft.get("peft_type", "")).upper()
    if kind == "LORA":
        method: dict[str, Any] = {"name": "lora"}
        for src, dst in (("r", "lora_r"), ("lora_alpha", "lora_alpha"), ("lora_dropout", "lora_dropout")):
            if src in peft:
                method[dst] = peft[src]
        if peft.get("target_modules"):
            targets = peft["target_modules"]
            method["lora_targets"] = [targets] if isinstance(targets, str) else list(targets)
        return method
    if kind == "PREFIX_TUNING":
        shape = [k for k in ("num_attention_heads", "token_dim", "num_layers") if k in peft]
        if shape:
            notes.append(
                f"peft_config.{'/'.join(shape)}: the prefix shape follows the model (its layers, key/value heads "
                "and head size), as the official prefix encoder's does"
            )
        return {
            "name": "ptuning-v2",
            "pre_seq_len": int(peft.get("num_virtual_tokens", 128)),
            "prefix_projection": bool(peft.get("prefix_projection", False)),
        }
    raise GlmtuneError(
        f"{source}: peft_config.peft_type {peft.get('peft_type')!r}: supported are LORA and PREFIX_TUNING"
    )


def load_official(
    data_dir: str, model_dir: str, config_path: str, resume: str | None, overrides: list[str] | None = None
) -> TrainConfig:
    """A :class:`TrainConfig` from the official ``finetune_hf.py`` arguments."""
    raw = read_yaml(Path(config_path))
    if not is_official_config(raw):
        raise GlmtuneError(f"{config_path}: not a finetune_demo config (no data_config/training_args)")
    for path, what in ((data_dir, "DATA_DIR"), (model_dir, "MODEL_DIR")):
        if not Path(path).is_dir():
            raise GlmtuneError(f"{path}: {what} is not a directory")
    if not (Path(model_dir) / "config.json").is_file():
        raise GlmtuneError(f"{model_dir}: MODEL_DIR holds no config.json (not a checkpoint directory)")
    notes: list[str] = []
    sections = official_to_glmtune(raw, Path(data_dir), Path(model_dir), config_path, notes)
    if resume:
        word = resume.strip().lower()
        if word == "yes":
            sections["training"]["resume"] = "auto"
        elif word.isdigit() and int(word) > 0:
            sections["training"]["resume"] = word
        elif word != "no":
            raise GlmtuneError(f"resume argument {resume!r}: use yes, no or a checkpoint number")
    cfg = build_config(sections, parse_overrides(overrides or []), source=config_path)
    cfg.notes += notes
    return cfg


def _whole(value: Any, where: str) -> int:
    """A whole number >= 1 (also written as text, which the official scripts' ``int()`` takes); else one line."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or number < 1:
        raise GlmtuneError(f"{where}: expected a whole number >= 1, got {value!r}")
    return number
