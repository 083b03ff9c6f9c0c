"""``glmtune predict``: batched generation over a data file, written as JSONL."""

from __future__ import annotations

from pathlib import Path

import typer


def predictions_for(
    model: Path,
    data: list[Path],
    adapter: Path | None,
    fmt: str | None,
    batch_size: int,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 0.8,
    seed: int | None = None,
    thinking: bool | None = None,
):
    from glmtune.data import load_records
    from glmtune.data.record import DataErrors
    from glmtune.infer import Engine, GenerationParams
    from glmtune.infer.loading import load_for_inference
    from glmtune.infer.predict import predict, samples_from_records

    try:
        records = load_records([str(p) for p in data], fmt=fmt)
    except DataErrors as e:  # every record is predicted: there is no --skip-invalid here
        raise DataErrors(e.issues, hint="fix them: every record is predicted") from None
    switches = {} if thinking is None else {"enable_thinking": thinking}
    engine = Engine(load_for_inference(model, adapter), template_kwargs=switches)
    params = GenerationParams(
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, do_sample=temperature > 0, seed=seed
    )
    return predict(engine, samples_from_records(records, engine.family), params, batch_size=batch_size)


def run_predict(
    model: Path,
    data: list[Path],
    output: Path,
    adapter: Path | None,
    fmt: str | None,
    batch_size: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    thinking: bool | None = None,
) -> None:
    from glmtune.infer.predict import write_predictions

    preds = predictions_for(model, data, adapter, fmt, batch_size, max_new_tokens, temperature, top_p, seed, thinking)
    write_predictions(output, preds)
    typer.echo(f"wrote {len(preds)} predictions to {output}")
    empty = [p for p in preds if p.note]
    if empty:
        typer.secho(f"warning: {len(empty)} of {len(preds)} predictions: {empty[0].note}", err=True, fg="yellow")
