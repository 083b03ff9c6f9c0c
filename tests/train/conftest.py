"""Tiny checkpoints per family, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from glmtune.model.tiny import make_tiny

_CACHE: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_factory(tmp_path_factory: pytest.TempPathFactory):
    def make(variant: str) -> Path:
        if variant not in _CACHE:
            _CACHE[variant] = make_tiny(variant, tmp_path_factory.mktemp(variant) / "ckpt")
        return _CACHE[variant]

    return make
