"""``glmtune serve``: load a model (plus adapter), start the batcher and run the app under uvicorn."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from glmtune.errors import GlmtuneError
from glmtune.serve.openai_format import Defaults

if TYPE_CHECKING:
    from glmtune.infer import Engine
    from glmtune.serve.batcher import Batcher


def build(
    model: str | Path,
    adapter: str | Path | None = None,
    dtype: str = "auto",
    max_batch_size: int = 32,
    backend: str = "auto",
) -> tuple[Engine, Batcher]:
    """An :class:`Engine` for ``model`` (LoRA merged for speed) and a running :class:`Batcher` over it."""
    from glmtune.infer import Engine
    from glmtune.infer.loading import load_for_inference
    from glmtune.serve.batcher import Batcher

    engine = Engine(load_for_inference(model, adapter, dtype=dtype, merge=True))
    return engine, Batcher(engine, max_batch_size=max_batch_size, backend=backend)


def tune_process(engine: Engine, threads: int | None = None) -> int:
    """CPU serving in one process: leave a core to the HTTP event loop, hand the GIL over quickly.

    torch's intra-op threads spin on every core between kernels; with the event loop on one of them, small
    per-token work (SSE writes) waits behind them, which costs more than the extra thread gains. Returns the
    torch thread count in use.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    elif engine.device.type == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, min(torch.get_num_threads(), cores - 1)))
    sys.setswitchinterval(0.001)  # the scheduler thread and the event loop alternate every 1 ms, not 5 ms
    return torch.get_num_threads()


def serve(
    model: Path,
    adapter: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    model_name: str | None = None,
    dtype: str = "auto",
    max_batch_size: int = 32,
    max_body_bytes: int = 8 << 20,
    defaults: Defaults | None = None,
    log_level: str = "info",
    threads: int | None = None,
    allowed_hosts: list[str] | None = None,
) -> None:
    """Serve ``model`` on ``host:port`` until interrupted (``allowed_hosts``: see :func:`create_app`)."""
    import uvicorn

    from glmtune.serve.app import create_app

    if max_batch_size < 1:
        raise GlmtuneError(f"--max-batch-size {max_batch_size}: must be at least 1")
    if api_key is not None and not api_key.strip():
        raise GlmtuneError("--api-key: must not be empty")
    name = model_name or Path(model).resolve().name
    if threads is not None and threads < 1:
        raise GlmtuneError(f"--threads {threads}: must be at least 1")
    engine, batcher = build(model, adapter, dtype=dtype, max_batch_size=max_batch_size)
    tune_process(engine, threads)
    app = create_app(
        batcher,
        name,
        api_key=api_key,
        max_body_bytes=max_body_bytes,
        defaults=defaults,
        allowed_hosts=allowed_hosts,
        bind_host=host,
    )
    logging.getLogger("glmtune.serve").info("serving %s (%s) as %r", model, engine.family.title, name)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    finally:
        batcher.close()
