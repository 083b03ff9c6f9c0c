"""Records → ``input_ids`` + ``labels``: one default renderer per family, and the official-compatible modes."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from glmtune.data.render.base import IGNORE, Plan, Renderer, Sample, Turn, assemble
from glmtune.errors import GlmtuneError
from glmtune.families import Family

RENDERERS = {
    "chatglm": "glmtune.data.render.chatglm:ChatGLMv1Renderer",
    "chatglm2": "glmtune.data.render.chatglm2:ChatGLM2Renderer",
    "chatglm3": "glmtune.data.render.chatglm3:ChatGLM3Renderer",
    "glm4": "glmtune.data.render.glm4:GLM4Renderer",
    "native": "glmtune.data.render.native:NativeRenderer",
}


def renderer_for(tokenizer: Any, family: Family) -> Renderer:
    """The default-mode renderer of ``family`` (a per-family module in this package)."""
    key = "native" if family.architecture == "native" else family.name
    if key not in RENDERERS:
        raise GlmtuneError(f"no renderer for family {family.name}")
    module, cls = RENDERERS[key].split(":")
    return getattr(import_module(module), cls)(tokenizer, family)


__all__ = ["IGNORE", "RENDERERS", "Plan", "Renderer", "Sample", "Turn", "assemble", "renderer_for"]
