"""``glmtune export``: merge a LoRA adapter (or attach a P-Tuning prefix) and write a full checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer


def run_export(ckpt: Path, out_dir: Path, layout: str, base: Path | None, dtype: str | None, force: bool) -> None:
    from glmtune.infer.loading import load_for_inference
    from glmtune.model.convert import save_model

    loaded = (
        load_for_inference(base, ckpt, merge=True) if base is not None else load_for_inference(ckpt, None, merge=True)
    )
    path = save_model(loaded, out_dir, layout=layout, dtype=dtype, force=force)
    typer.echo(f"wrote {layout} {loaded.family.title} checkpoint to {path}")
