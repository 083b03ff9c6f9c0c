"""glmtune: fine-tune, evaluate, export and serve the ChatGLM family on current transformers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# bitsandbytes warns at import on CPUs without its optional kernels package; glmtune picks its CPU path itself
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

if TYPE_CHECKING:  # pragma: no cover
    from glmtune.model.load import LoadedModel


def load(path: str, **kwargs: Any) -> LoadedModel:
    """Load a checkpoint (original THUDM layout or native HF ``Glm*``) with its tokenizer.

    See :func:`glmtune.model.load.load` for the keyword arguments.
    """
    from glmtune.model.load import load as _load

    return _load(path, **kwargs)


__all__ = ["__version__", "load"]
