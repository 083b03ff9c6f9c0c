"""``glmtune webui``: the gradio chat page."""

from __future__ import annotations

from pathlib import Path


def run_webui(
    model: Path,
    adapter: Path | None,
    host: str,
    port: int,
    dtype: str,
    system: str,
    max_tokens: int,
    temperature: float,
    top_p: float,
) -> None:
    from glmtune.webui.app import Settings, run_webui

    settings = Settings(max_tokens=max_tokens, temperature=temperature, top_p=top_p, system=system)
    run_webui(model, adapter=adapter, host=host, port=port, dtype=dtype, settings=settings)
