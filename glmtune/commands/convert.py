"""``glmtune convert``: original THUDM layout <-> native transformers directory."""

from __future__ import annotations

from pathlib import Path

import typer


def run_convert(src: Path, dst: Path, to: str, dtype: str | None, family: str | None, force: bool) -> None:
    from glmtune.model.convert import convert

    out = convert(src, dst, to=to, dtype=dtype, family=family, force=force)
    typer.echo(f"wrote {to} checkpoint to {out}")
