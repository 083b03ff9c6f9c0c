"""P-Tuning v2 entry points for ChatGLM-6B (v1) used by training and export (the official semantics live in the
model: ``ChatGLMv1ForCausalLM.enable_ptuning``; the official files in ``loading.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError
from glmtune.model.chatglm_v1.loading import _load_prefix_state, read_official_prefix, save_v1_prefix


def add_prefix_v1(model: Any, pre_seq_len: int, prefix_projection: bool = False) -> Any:
    """Give ``model`` a fresh official prefix encoder (fp32, trainable; everything else frozen), in place."""
    model.enable_ptuning(pre_seq_len, prefix_projection)
    return model


def save_prefix_v1(model: Any, directory: str | Path) -> Path:
    """Write only the prefix encoder as the official trainer does (``pytorch_model.bin`` + full ``config.json``)."""
    return save_v1_prefix(model, directory)


def load_prefix_state_v1(model: Any, directory: str | Path) -> None:
    """Load the prefix weights of an official-format checkpoint into a model that already has a prefix encoder."""
    directory = Path(directory)
    if model.transformer.prefix_encoder is None:
        raise GlmtuneError(f"{directory}: the model has no prefix encoder to load into")
    prefix, weights = read_official_prefix(directory)
    _load_prefix_state(model, prefix, weights)


__all__ = ["add_prefix_v1", "load_prefix_state_v1", "save_prefix_v1"]
