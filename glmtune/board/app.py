"""``glmtune board``: the gradio page. Tabs: configure and preview (:mod:`.tab_configure`), run (:mod:`.tab_run`),
after (:mod:`.tab_after`); their callbacks call :class:`~glmtune.board.session.Board`.

The page uses no external assets (system fonts only), like ``glmtune webui``, so it works without internet.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from glmtune.board import tab_after, tab_configure, tab_run
from glmtune.board.session import Board

CSS = """
.field-error p { color: #b91c1c; font-weight: 600; margin: 0; }
.field-note p { color: #166534; margin: 0; }
#run_progress .bar { height: 10px; background: #e5e7eb; border-radius: 5px; overflow: hidden; }
#run_progress .bar > div { height: 100%; background: #2563eb; }
"""


def build_board(board: Board, title: str = "glmtune board") -> Any:
    """The gradio ``Blocks`` page of ``board``."""
    import gradio as gr

    page = SimpleNamespace()
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}\nConfigure a fine-tune, preview its samples, run it, then evaluate, chat and export.")
        with gr.Tabs(elem_id="tabs") as page.tabs:
            with gr.Tab("Configure", id="configure", elem_id="tab_configure"):
                tab_configure.layout(gr, board, page)
            with gr.Tab("Preview", id="preview", elem_id="tab_preview"):
                tab_configure.layout_preview(gr, page)
            with gr.Tab("Run", id="run", elem_id="tab_run"):
                tab_run.layout(gr, board, page)
            with gr.Tab("After", id="after", elem_id="tab_after") as page.after_tab:
                tab_after.layout(gr, board, page)
        page.timer = gr.Timer(1.0)
        tab_configure.wire(gr, board, page)
        tab_run.wire(gr, board, page)
        tab_after.wire(gr, board, page)
    return demo


def default_config_roots() -> list[Path]:
    """./configs, and the configs/ of the glmtune checkout when it runs from one."""
    roots = [Path.cwd() / "configs", Path(__file__).resolve().parents[2] / "configs"]
    seen: dict[Path, None] = {}
    for root in roots:
        if root.is_dir():
            seen.setdefault(root.resolve(), None)
    return list(seen)


def run_board(
    workdir: Path,
    host: str = "127.0.0.1",
    port: int = 7861,
    config_roots: list[Path] | None = None,
) -> None:
    """Serve the board until interrupted (runs it started keep training)."""
    from glmtune.webui.app import check_port, launch_page

    check_port(port)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    board = Board(workdir, config_roots=config_roots)
    demo = build_board(board)
    demo.queue(default_concurrency_limit=4)
    try:
        launch_page(demo, host, port, css=CSS)
    finally:
        board.chat.close()
