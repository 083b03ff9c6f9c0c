"""The tokenizer of a tiny checkpoint of each ``make-tiny`` variant, built once per test process (property tests
call it from inside hypothesis examples, where fixtures are not available)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from glmtune.families import get_family
from glmtune.model.tiny import make_tiny
from glmtune.tokenization import load_tokenizer

_TOKENIZERS: dict[str, Any] = {}


def tiny_tokenizer(variant: str) -> Any:
    """The tokenizer of ``make_tiny(variant)`` (written to a temporary directory the first time)."""
    if variant not in _TOKENIZERS:
        directory = make_tiny(variant, Path(tempfile.mkdtemp()) / "t")
        _TOKENIZERS[variant] = load_tokenizer(directory, get_family(variant))
    return _TOKENIZERS[variant]
