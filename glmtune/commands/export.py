"""``glmtune export``: merge a LoRA adapter (or attach a P-Tuning prefix) and write a full checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer


def export_checkpoint(
    ckpt: Path, out_dir: Path, layout: str, base: Path | None, dtype: str | None, force: bool
) -> tuple[Path, str]:
    """Write the merged model of ``ckpt``; (where it went, the family's title)."""
    from glmtune.infer.loading import load_for_inference
    from glmtune.model.convert import save_model

    loaded = (
        load_for_inference(base, ckpt, merge=True) if base is not None else load_for_inference(ckpt, None, merge=True)
    )
    return save_model(loaded, out_dir, layout=layout, dtype=dtype, force=force), loaded.family.title


def run_export(ckpt: Path, out_dir: Path, layout: str, base: Path | None, dtype: str | None, force: bool) -> None:
    path, title = export_checkpoint(ckpt, out_dir, layout, base, dtype, force)
    typer.echo(f"wrote {layout} {title} checkpoint to {path}")
