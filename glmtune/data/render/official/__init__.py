"""Official-compatible modes: each reproduces one official THUDM processor token for token, on raw records.

One file per processor (``chatglm3_demo.py``: the finetune_chatmodel_demo datasets, ``finetune_demo.py``,
``ptuning.py``: ChatGLM2-6B, ``chatglm_ptuning.py``: ChatGLM-6B), each with its settings dataclass and its
``MODES`` (:class:`~glmtune.data.render.modes.Mode`), found by :func:`~glmtune.data.render.modes.all_modes`.
They take records exactly as read (no normalisation: the official code's own accept/refuse rules apply) and
return the official output keys. ``glmtune preprocess --mode NAME`` and :func:`glmtune.data.render_records` run
them in batches of ``batch_size`` records (``datasets.map``'s default, which decides eval padding).
"""

from __future__ import annotations

from glmtune.data.render.official.common import BatchError, BatchResult

__all__ = ["BatchError", "BatchResult"]
