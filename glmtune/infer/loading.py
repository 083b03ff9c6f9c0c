"""Load a model for inference: a base checkpoint, plus a LoRA adapter or a P-Tuning prefix.

Accepted shapes: ``MODEL``; ``MODEL --adapter DIR``; or, as the official ``inference_hf.py CKPT``, a checkpoint
directory whose ``adapter_config.json`` (LoRA) or ``config.json`` (P-Tuning, ``pre_seq_len``) names its base model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError
from glmtune.model.load import LoadedModel, load


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise GlmtuneError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None


def adapter_kind(directory: Path) -> str | None:
    """``lora`` (peft adapter), ``prefix`` (P-Tuning v2 checkpoint) or None (a full model)."""
    if (directory / "adapter_config.json").is_file():
        return "lora"
    cfg = directory / "config.json"
    if cfg.is_file() and _json(cfg).get("pre_seq_len"):
        has_full = any(
            (directory / n).is_file()
            for n in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin.index.json")
        )
        return None if has_full else "prefix"
    return None


def base_of(adapter: Path) -> Path:
    """The base model an adapter/prefix checkpoint was trained from (as recorded in its config)."""
    if (adapter / "adapter_config.json").is_file():
        base = _json(adapter / "adapter_config.json").get("base_model_name_or_path")
    else:
        base = _json(adapter / "config.json").get("_name_or_path")
    if not base or not Path(base).is_dir():
        raise GlmtuneError(
            f"{adapter}: does not name an existing base model directory ({base!r}); pass MODEL and --adapter separately"
        )
    return Path(base)


def load_for_inference(
    model: str | Path,
    adapter: str | Path | None = None,
    dtype: str = "auto",
    device_map: Any = None,
    family: str | None = None,
    merge: bool = False,
) -> LoadedModel:
    """A :class:`LoadedModel` ready to generate, with its adapter applied."""
    model_path = Path(model)
    if adapter is None and adapter_kind(model_path) is not None:
        adapter, model_path = model_path, base_of(model_path)
    adapter_path = Path(adapter) if adapter is not None else None
    kind = adapter_kind(adapter_path) if adapter_path is not None else None
    if adapter_path is not None and kind is None:
        raise GlmtuneError(f"{adapter_path}: not a LoRA adapter (adapter_config.json) or P-Tuning checkpoint")
    if adapter_path is not None:
        from glmtune.families import detect_family, get_family, read_config
        from glmtune.model.adapters import check_base

        fam = get_family(family) if family else detect_family(read_config(model_path), model_path)
        check_base(adapter_path, model_path, fam)
    loaded = load(
        model_path, dtype=dtype, device_map=device_map, family=family, prefix=adapter_path if kind == "prefix" else None
    )
    if kind == "lora":
        from glmtune.model.adapters import apply_lora_adapter

        loaded.model = apply_lora_adapter(loaded.model, adapter_path, loaded.family, merge=merge)
    return loaded
