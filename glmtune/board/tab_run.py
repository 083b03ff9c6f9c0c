"""The run tab: the selected run's status, progress bar, loss curve and log; stop / resume; all runs, overlaid."""

from __future__ import annotations

from typing import Any

from glmtune.board.curves import SUMMARY_HEADERS
from glmtune.board.session import Board
from glmtune.board.widgets import guarded, progress_html


def layout(gr: Any, board: Board, page: Any) -> None:
    names = board.runs.names()
    with gr.Row():
        page.run_pick = gr.Dropdown(names, value=names[0] if names else None, label="Run", elem_id="run_pick", scale=4)
        page.refresh_btn = gr.Button("↻", elem_id="refresh_runs", scale=0, min_width=60)
        page.stop_btn = gr.Button("Stop", variant="stop", elem_id="stop", scale=1)
        page.resume_btn = gr.Button("Resume", elem_id="resume", scale=1)
    page.run_msg = gr.Markdown("", elem_id="run_message")
    page.status = gr.Markdown("no run selected", elem_id="run_status")
    page.bar = gr.HTML(progress_html(0), elem_id="run_progress")
    page.curve = gr.Plot(label="Loss", format="png", elem_id="run_curve")
    page.log = gr.Textbox(label="Log (tail)", lines=14, max_lines=14, interactive=False, elem_id="run_log")
    gr.Markdown("### All runs")
    page.table = gr.Dataframe(headers=SUMMARY_HEADERS, interactive=False, elem_id="runs_table", wrap=True)
    page.compare_pick = gr.CheckboxGroup(names, value=names[:3], label="Compare", elem_id="compare_pick")
    page.compare = gr.Plot(label="Loss, overlaid", format="png", elem_id="compare_curve")


def wire(gr: Any, board: Board, page: Any) -> None:
    shown = gr.State({})  # what this page last drew, so an unchanged plot is not drawn again

    def refresh(selected: str | None, chosen: list[str] | None, last: dict[str, Any]) -> list[Any]:
        p = board.panel(selected, chosen)
        now = {"curve": [selected, p.curve_points], "compare": [list(chosen or []), p.compare_points]}
        curve = p.curve() if now["curve"] != last.get("curve") else gr.skip()
        compare = p.compare() if now["compare"] != last.get("compare") else gr.skip()
        return [p.status, progress_html(p.percent), curve, p.log, p.table, compare, now]

    inputs = [page.run_pick, page.compare_pick, shown]
    outputs = [page.status, page.bar, page.curve, page.log, page.table, page.compare, shown]
    page.timer.tick(refresh, inputs, outputs, show_progress="hidden")
    page.run_pick.change(refresh, inputs, outputs, show_progress="hidden")
    page.compare_pick.change(refresh, inputs, outputs, show_progress="hidden")

    def list_runs(selected: str | None, chosen: list[str] | None) -> list[Any]:
        names = board.runs.names()
        pick = selected if selected in names else (names[0] if names else None)
        return [gr.update(choices=names, value=pick), gr.update(choices=names, value=chosen or [])]

    page.refresh_btn.click(list_runs, [page.run_pick, page.compare_pick], [page.run_pick, page.compare_pick])
    page.stop_btn.click(guarded(board.stop), page.run_pick, page.run_msg)
    page.resume_btn.click(guarded(board.resume), page.run_pick, page.run_msg)
