"""Family registry and detection from a checkpoint's ``config.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError
from glmtune.families.base import Family, Message, ToolCall, Variant
from glmtune.families.chatglm import CHATGLM
from glmtune.families.chatglm2 import CHATGLM2
from glmtune.families.chatglm3 import CHATGLM3
from glmtune.families.glm4 import GLM4
from glmtune.families.glm4_0414 import GLM4_0414
from glmtune.families.glm_moe import GLM4_MOE, GLM4_MOE_LITE, GLM_MOE_DSA

FAMILIES: dict[str, Family] = {
    f.name: f for f in (CHATGLM, CHATGLM2, CHATGLM3, GLM4, GLM4_0414, GLM4_MOE, GLM4_MOE_LITE, GLM_MOE_DSA)
}
NATIVE_MODEL_TYPES: dict[str, Family] = {
    getattr(f, "model_type", ""): f for f in FAMILIES.values() if f.architecture == "native"
}
VARIANTS: dict[str, tuple[Family, Variant]] = {v.name: (f, v) for f in FAMILIES.values() for v in f.variants}


def get_family(name: str) -> Family:
    """The family called ``name`` (a variant name such as ``chatglm3-32k`` also works)."""
    if name in FAMILIES:
        return FAMILIES[name]
    if name in VARIANTS:
        return VARIANTS[name][0]
    raise GlmtuneError(f"unknown model family {name!r}; known: {', '.join(sorted(VARIANTS))}")


def _looks_like_tiktoken(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    first = head.split(b"\n", 1)[0].split(b" ")
    return len(first) == 2 and first[1].strip().isdigit()


def detect_family(config: dict[str, Any], directory: Path | None = None) -> Family:
    """Which family a checkpoint belongs to, from its config (and tokenizer file when needed).

    glmtune-written directories say so in ``glmtune_family``; original THUDM configs are told apart by their
    keys (v1 has ``position_encoding_2d``), by the tokenizer file (GLM-4 ranks are text) and by ``_name_or_path``.
    ChatGLM2 and ChatGLM3 configs are otherwise identical: an unnamed one is taken as ChatGLM3.
    """
    if config.get("glmtune_family"):
        return get_family(config["glmtune_family"])
    model_type = config.get("model_type")
    if model_type in NATIVE_MODEL_TYPES:
        return NATIVE_MODEL_TYPES[model_type]
    name = str(config.get("_name_or_path", "")).lower()
    if model_type == "glm":
        if config.get("vocab_size", 0) >= 150000 or "glm-4" in name or "glm4" in name:
            return GLM4
        return CHATGLM3
    if model_type not in ("chatglm", "chatglm_v1"):
        raise GlmtuneError(
            f"{directory or 'config.json'}: model_type {model_type!r} is not a ChatGLM checkpoint "
            f"(expected 'chatglm', 'glm' or one of {', '.join(sorted(NATIVE_MODEL_TYPES))})"
        )
    if "position_encoding_2d" in config or "inner_hidden_size" in config or model_type == "chatglm_v1":
        return CHATGLM
    if directory is not None and _looks_like_tiktoken(directory / "tokenizer.model"):
        return GLM4
    if isinstance(config.get("eos_token_id"), list) or config.get("padded_vocab_size", 0) >= 150000:
        return GLM4
    if "glm-4" in name or "glm4" in name:
        return GLM4
    if "chatglm2" in name:
        return CHATGLM2
    return CHATGLM3


def read_config(directory: Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory, with a clear error when it is missing or broken."""
    path = Path(directory) / "config.json"
    if not Path(directory).is_dir():
        raise GlmtuneError(f"{directory}: not a directory")
    if not path.is_file():
        raise GlmtuneError(f"{path}: missing (a checkpoint directory needs config.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise GlmtuneError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None


__all__ = [
    "FAMILIES",
    "VARIANTS",
    "Family",
    "Message",
    "ToolCall",
    "Variant",
    "detect_family",
    "get_family",
    "read_config",
]
