"""``glmtune serve``: the OpenAI-compatible API server (warns when it is exposed without a key)."""

from __future__ import annotations

from pathlib import Path

import typer

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def run_serve(
    model: Path,
    adapter: Path | None,
    host: str,
    port: int,
    api_key: str | None,
    model_name: str | None,
    dtype: str,
    max_batch_size: int,
    max_tokens: int,
    max_tokens_limit: int | None,
    temperature: float,
    top_p: float,
    max_body_bytes: int,
    log_level: str,
    threads: int | None,
    allowed_hosts: str | None = None,
) -> None:
    from glmtune.serve.openai_format import Defaults
    from glmtune.serve.server import serve

    hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()] if allowed_hosts else None
    if host not in LOOPBACK and not api_key:
        typer.secho(
            f"warning: serving on {host} without --api-key: anyone who can reach it can use it"
            + ("" if hosts else " (as http://localhost or the bound address; --allowed-hosts adds host names)"),
            err=True,
            fg=typer.colors.YELLOW,
        )
    serve(
        model,
        adapter=adapter,
        host=host,
        port=port,
        api_key=api_key,
        model_name=model_name,
        dtype=dtype,
        max_batch_size=max_batch_size,
        max_body_bytes=max_body_bytes,
        log_level=log_level,
        threads=threads,
        allowed_hosts=hosts,
        defaults=Defaults(
            temperature=temperature, top_p=top_p, max_tokens=max_tokens, max_tokens_limit=max_tokens_limit
        ),
    )
