"""``glmtune board``: the training web UI."""

from __future__ import annotations

from pathlib import Path

import typer


def run_board(workdir: Path, host: str, port: int, configs: list[Path] | None) -> None:
    from glmtune.board.app import default_config_roots, run_board

    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(
            f"warning: the board on {host} lets anyone who can reach it start processes and read files",
            err=True,
            fg=typer.colors.YELLOW,
        )
    run_board(workdir, host=host, port=port, config_roots=configs or default_config_roots())
