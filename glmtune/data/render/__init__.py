"""Records → ``input_ids`` + ``labels``: one default renderer per family, and the official-compatible modes."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from glmtune.data.render.base import IGNORE, Plan, Renderer, Sample, Turn, assemble
from glmtune.errors import GlmtuneError
from glmtune.families import Family


def renderer_for(tokenizer: Any, family: Family) -> Renderer:
    """The default-mode renderer of ``family`` (its :attr:`~glmtune.families.Family.renderer_class`)."""
    if not family.renderer_class:
        raise GlmtuneError(f"no renderer for family {family.name}")
    module, cls = family.renderer_class.split(":")
    return getattr(import_module(module), cls)(tokenizer, family)


__all__ = ["IGNORE", "Plan", "Renderer", "Sample", "Turn", "assemble", "renderer_for"]
