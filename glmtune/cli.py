"""The ``glmtune`` command line: one thin function per command; the work happens in the packages.

User mistakes (``GlmtuneError``) print one line and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from glmtune.errors import GlmtuneError

app = typer.Typer(
    name="glmtune",
    help="Fine-tune, evaluate, export and serve ChatGLM-6B, ChatGLM2/3-6B and GLM-4-9B checkpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

_DEBUG = {"on": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
) -> None:
    _DEBUG["on"] = debug or bool(os.environ.get("GLMTUNE_DEBUG"))


# ---------------------------------------------------------------------------------------------------- commands
# Each command imports its implementation lazily so `glmtune --help` stays fast.


@app.command("make-tiny")
def make_tiny_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the checkpoint to (must not exist).")],
    family: Annotated[
        str,
        typer.Option(help="chatglm | chatglm2 | chatglm3 | chatglm3-base | chatglm3-32k | glm4"),
    ] = "chatglm3",
    fmt: Annotated[str, typer.Option("--format", help="safetensors (sharded, with index) or bin")] = "safetensors",
    seed: Annotated[int, typer.Option(help="Random seed of the weights.")] = 0,
) -> None:
    """Write a tiny random-weight checkpoint in the ORIGINAL THUDM layout (deterministic, seconds on CPU)."""
    from glmtune.model.tiny import make_tiny

    path = make_tiny(family, out_dir, fmt=fmt, seed=seed)
    typer.echo(f"wrote {family} tiny checkpoint to {path}")


def main() -> None:
    """Entry point of the ``glmtune`` script."""
    try:
        app()
    except GlmtuneError as e:
        if _DEBUG["on"]:
            raise
        typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
