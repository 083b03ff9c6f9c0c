"""The private Trainer internals GlmTrainer overrides still have the signatures it was written against."""

from __future__ import annotations

import inspect

from glmtune.train.trainer import GlmTrainer
from glmtune.train.trainer_pins import PINNED_METHODS, check_pins


def test_transformers_still_matches_the_pins() -> None:
    problems = check_pins()
    assert not problems, "transformers changed Trainer internals glmtune overrides: " + "; ".join(problems)


def test_every_private_override_is_pinned() -> None:
    from transformers import Seq2SeqTrainer

    overridden = {
        name
        for name, value in vars(GlmTrainer).items()
        if name.startswith("_") and not name.startswith("__") and callable(value) and hasattr(Seq2SeqTrainer, name)
    }
    assert overridden <= set(PINNED_METHODS), f"unpinned private overrides: {sorted(overridden - set(PINNED_METHODS))}"
    for name in overridden:
        assert tuple(inspect.signature(getattr(GlmTrainer, name)).parameters) == PINNED_METHODS[name]


def test_a_changed_signature_is_reported() -> None:
    class Changed:
        def _save(self, output_dir, state_dict, extra):  # pragma: no cover - only inspected
            pass

    problems = check_pins(Changed)
    assert any("_save" in p for p in problems) and any("_get_output_dir is gone" in p for p in problems)
