"""The official ChatGLM3 ``finetune_demo`` command line and YAMLs, mapped onto a glmtune config.

``python finetune_hf.py DATA_DIR MODEL_DIR configs/lora.yaml [yes|N]`` becomes
``glmtune train DATA_DIR MODEL_DIR configs/lora.yaml [yes|N]`` with the YAML unchanged: ``data_config``
(train/val/test file + num_proc), ``max_input_length``/``max_output_length``, ``training_args`` (old names such as
``evaluation_strategy`` accepted, ``generation_config`` included) and ``peft_config`` (``LORA``, ``PREFIX_TUNING``
= the official P-Tuning v2, or absent = full fine-tuning). As in that script, gradient checkpointing is on and
evaluation uses the first 50 validation records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glmtune.config.load import build_config, parse_overrides, read_yaml
from glmtune.config.schema import TrainConfig
from glmtune.errors import GlmtuneError

OFFICIAL_KEYS = {"data_config", "max_input_length", "max_output_length", "training_args", "peft_config"}


def is_official_config(raw: dict[str, Any]) -> bool:
    return "data_config" in raw or "training_args" in raw


def official_to_glmtune(raw: dict[str, Any], data_dir: Path, model_dir: Path, source: str) -> dict[str, Any]:
    """The glmtune sections equivalent to an official finetune_demo YAML."""
    unknown = set(raw) - OFFICIAL_KEYS
    if unknown:
        raise GlmtuneError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))} in a finetune_demo config")
    data_cfg = raw.get("data_config") or {}
    if "train_file" not in data_cfg:
        raise GlmtuneError(f"{source}: data_config.train_file is required")
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
        data["num_proc"] = int(data_cfg["num_proc"])
    for key in ("max_input_length", "max_output_length"):
        if key not in raw:
            raise GlmtuneError(f"{source}: {key} is required")
        data[key] = int(raw[key])
    data["max_length"] = data["max_input_length"] + data["max_output_length"] + 1
    training.setdefault("activation_checkpointing", True)
    training.setdefault("remove_unused_columns", False)
    return {
        "model": {"path": str(model_dir)},
        "data": data,
        "method": _method(raw.get("peft_config"), source),
        "training": training,
    }


def _method(peft: dict[str, Any] | None, source: str) -> dict[str, Any]:
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
    sections = official_to_glmtune(raw, Path(data_dir), Path(model_dir), config_path)
    if resume:
        word = resume.strip().lower()
        if word == "yes":
            sections["training"]["resume"] = "auto"
        elif word.isdigit() and int(word) > 0:
            sections["training"]["resume"] = word
        elif word != "no":
            raise GlmtuneError(f"resume argument {resume!r}: use yes, no or a checkpoint number")
    return build_config(sections, parse_overrides(overrides or []), source=config_path)
