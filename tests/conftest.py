"""Shared test helpers: where the reference fixtures are, and tiny checkpoints built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("GLMTUNE_FIXTURES", REPO.parent / "shared" / "fixtures")).resolve()


def fixtures_dir(*parts: str) -> Path:
    """A directory under $GLMTUNE_FIXTURES (default ../shared/fixtures); missing fixtures fail, never skip."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"fixture directory {path} is missing (set GLMTUNE_FIXTURES)")
    return path


@pytest.fixture(scope="session")
def fixtures_root() -> Path:
    return FIXTURES
