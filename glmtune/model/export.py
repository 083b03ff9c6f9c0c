"""Writing trained models: P-Tuning checkpoints in the official format (more export code joins in later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError


def _is_v1(model: Any) -> bool:
    return getattr(model.config, "model_type", "") == "chatglm_v1"


def save_prefix_checkpoint(model: Any, directory: Path, family: Any = None) -> None:
    """Save only the prefix encoder, as the official P-Tuning trainer does (``pytorch_model.bin`` + config)."""
    if _is_v1(model):
        from glmtune.model.chatglm_v1.ptuning import save_prefix_v1

        save_prefix_v1(model, directory)
        return
    from glmtune.model.glm_config import original_config
    from glmtune.model.ptuning import save_official_prefix

    cfg = original_config(model.config)
    base = Path(str(getattr(model.config, "_name_or_path", "") or ""))
    if base.is_dir():  # the official trainer records the base model here; chat/predict/export follow it
        cfg["_name_or_path"] = str(base.resolve())
    save_official_prefix(model, directory, cfg)


def load_prefix_checkpoint(model: Any, directory: Path) -> None:
    """Load a prefix saved by :func:`save_prefix_checkpoint` (or the official trainer) into a prefix model."""
    if not hasattr(model, "prefix_encoder"):
        raise GlmtuneError(f"{directory}: the model has no prefix encoder to load into")
    if _is_v1(model):
        from glmtune.model.chatglm_v1.ptuning import load_prefix_state_v1

        load_prefix_state_v1(model, directory)
        return
    from glmtune.model.ptuning import _load_prefix_state, read_official_prefix

    state, _ = read_official_prefix(directory)
    _load_prefix_state(model, state, directory)
