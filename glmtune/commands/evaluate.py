"""``glmtune eval``: official metrics of a predictions file, or of a model's predictions on a data file."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from glmtune.errors import GlmtuneError


def evaluate_model(
    model: Path, data: Path, adapter: Path | None, variant: str, batch_size: int, max_new_tokens: int
) -> tuple[dict[str, float], list]:
    """Generate the last reply of every record of ``data`` and score it: (metrics, predictions)."""
    from glmtune.commands.predict import predictions_for
    from glmtune.evaluate import compute_metrics

    results = predictions_for(model, [data], adapter, None, batch_size, max_new_tokens)
    missing = [p.id for p in results if p.reference is None]
    if missing:
        raise GlmtuneError(f"{data}: record {missing[0]} has no assistant reply to score against")
    preds, refs = [p.prediction for p in results], [p.reference or "" for p in results]
    return compute_metrics(preds, refs, variant=variant), results


def run_evaluate(
    model: Path | None,
    predictions: Path | None,
    data: Path | None,
    adapter: Path | None,
    variant: str,
    batch_size: int,
    max_new_tokens: int,
) -> None:
    from glmtune.evaluate import compute_metrics, read_predictions

    if predictions is not None:
        preds, refs, _ = read_predictions(predictions)
        metrics = compute_metrics(preds, refs, variant=variant)
    elif model is not None and data is not None:
        metrics, _ = evaluate_model(model, data, adapter, variant, batch_size, max_new_tokens)
    else:
        raise GlmtuneError("give --predictions FILE, or MODEL and --data FILE")
    typer.echo(json.dumps(metrics, ensure_ascii=False, indent=2))
