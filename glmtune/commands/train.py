"""``glmtune train``: parse either command form, run the recipe, print where everything went."""

from __future__ import annotations

import typer

from glmtune.errors import GlmtuneError


def split_positionals(args: list[str]) -> tuple[list[str], list[str]]:
    """Leading positional arguments, then the ``--key value`` overrides."""
    for i, a in enumerate(args):
        if a.startswith("--"):
            return args[:i], args[i:]
    return args, []


def run_train(args: list[str]) -> None:
    from glmtune.config import load_config, load_official
    from glmtune.train.recipe import train

    positional, overrides = split_positionals(args)
    if len(positional) == 1:
        cfg = load_config(positional[0], overrides)
    elif len(positional) in (3, 4):
        data_dir, model_dir, config = positional[:3]
        cfg = load_official(data_dir, model_dir, config, positional[3] if len(positional) == 4 else None, overrides)
    else:
        raise GlmtuneError(
            "usage: glmtune train CONFIG.yaml [--key value ...]  or  "
            "glmtune train DATA_DIR MODEL_DIR CONFIG.yaml [yes|N]"
        )
    for note in cfg.notes:
        typer.echo(f"note: {note}", err=True)
    result = train(cfg, notify=lambda line: typer.echo(line, err=True))
    typer.echo(f"trained {cfg.method.name} on {cfg.model.path}")
    if result.first_loss is not None:
        typer.echo(f"loss: {result.first_loss:.4f} -> {result.last_loss:.4f}")
    if result.metrics.get("eval_loss") is not None:
        typer.echo(f"eval loss: {result.metrics['eval_loss']:.4f}")
    typer.echo(f"output:        {result.output_dir}")
    typer.echo(f"trainer state: {result.trainer_state}")
    if result.loss_plot:
        typer.echo(f"loss curve:    {result.loss_plot}")
