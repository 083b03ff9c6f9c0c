"""ChatGLM-6B (first generation, "v1"): glmtune's exact reimplementation of the official model.

``load_v1_model(dir)`` reads an original THUDM checkpoint (nothing from it is imported), ``load_v1_prefix`` applies
an official P-Tuning v2 checkpoint, ``save_v1_original`` writes the original layout back. The official
``chat``/``stream_chat`` helpers are :mod:`glmtune.infer.official_v1`.
"""

from __future__ import annotations

from glmtune.model.chatglm_v1.configuration import ChatGLMv1Config
from glmtune.model.chatglm_v1.loading import (
    load_v1_model,
    load_v1_prefix,
    save_v1_native,
    save_v1_original,
    save_v1_prefix,
)
from glmtune.model.chatglm_v1.modeling import ChatGLMv1ForCausalLM, ChatGLMv1Model

__all__ = [
    "ChatGLMv1Config",
    "ChatGLMv1ForCausalLM",
    "ChatGLMv1Model",
    "load_v1_model",
    "load_v1_prefix",
    "save_v1_native",
    "save_v1_original",
    "save_v1_prefix",
]
