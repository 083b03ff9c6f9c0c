"""``glmtune make-tiny``: a tiny random-weight checkpoint in the original THUDM layout."""

from __future__ import annotations

from pathlib import Path

import typer


def run_make_tiny(out_dir: Path, family: str, fmt: str, seed: int, force: bool = False) -> None:
    from glmtune.model.tiny import make_tiny

    path = make_tiny(family, out_dir, fmt=fmt, seed=seed, force=force)
    typer.echo(f"wrote {family} tiny checkpoint to {path}")
