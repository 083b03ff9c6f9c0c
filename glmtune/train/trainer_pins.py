"""The private ``transformers.Trainer`` internals glmtune overrides, pinned in one place.

Public hooks (callbacks, ``save_model``) cannot redirect where a checkpoint is written, save a model that is not
``save_pretrained``-shaped, or load one back on resume, so :class:`~glmtune.train.trainer.GlmTrainer` overrides
these methods. Their signatures are recorded here; :func:`check_pins` compares them with the installed
transformers and ``tests/unit/test_trainer_pins.py`` fails loudly (naming the method) when a release changes one.
"""

from __future__ import annotations

import inspect
from typing import Any

PINNED_METHODS: dict[str, tuple[str, ...]] = {
    # where a checkpoint goes: GlmTrainer stages it and renames it into place (atomic checkpoints)
    "_get_output_dir": ("self", "trial"),
    "_save_checkpoint": ("self", "model", "trial"),
    # model files of methods that are not plain save_pretrained (peft adapters, P-Tuning prefixes)
    "_save": ("self", "output_dir", "state_dict"),
    "_load_from_checkpoint": ("self", "resume_from_checkpoint", "model"),
}
"""Private ``Trainer`` method -> the parameter names glmtune's override takes."""

PINNED_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "transformers.trainer_utils.rotate_checkpoints": (
        "output_dir",
        "save_total_limit",
        "best_model_checkpoint",
        "use_mtime",
    ),
    "transformers.trainer_utils.PREFIX_CHECKPOINT_DIR": (),
}
"""Helpers glmtune calls from transformers' internals -> the keyword arguments it passes (``()``: a constant)."""


def _resolve(dotted: str) -> Any:
    from importlib import import_module

    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)


def check_pins(trainer_cls: type | None = None) -> list[str]:
    """What no longer matches in the installed transformers (empty when every pin holds)."""
    if trainer_cls is None:
        from transformers import Seq2SeqTrainer as trainer_cls
    problems: list[str] = []
    for name, params in PINNED_METHODS.items():
        method = getattr(trainer_cls, name, None)
        if method is None:
            problems.append(f"Trainer.{name} is gone")
            continue
        have = tuple(inspect.signature(method).parameters)
        if have != params:
            problems.append(f"Trainer.{name}{have} != pinned {params}")
    for dotted, params in PINNED_FUNCTIONS.items():
        try:
            obj = _resolve(dotted)
        except (ImportError, AttributeError):
            problems.append(f"{dotted} is gone")
            continue
        if params:
            have = tuple(inspect.signature(obj).parameters)
            missing = [p for p in params if p not in have]
            if missing:
                problems.append(f"{dotted} lost parameter(s) {', '.join(missing)}")
    return problems
