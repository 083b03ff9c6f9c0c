"""``glmtune board``: the gradio page (configure, preview, run, after). Callbacks live in :mod:`.session`.

The page uses no external assets (system fonts only), like ``glmtune webui``, so it works without internet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from glmtune.board.checks import GROUPS
from glmtune.board.curves import SUMMARY_HEADERS
from glmtune.board.form import BY_KEY, FIELDS, OTHER, Field, applies, defaults
from glmtune.board.session import KEYS, Board
from glmtune.errors import GlmtuneError

NOTED = ("model.path", "data.train", "data.eval")  # fields that show what was detected
CSS = """
.field-error p { color: #b91c1c; font-weight: 600; margin: 0; }
.field-note p { color: #166534; margin: 0; }
#run_progress .bar { height: 10px; background: #e5e7eb; border-radius: 5px; overflow: hidden; }
#run_progress .bar > div { height: 100%; background: #2563eb; }
"""


def _component(gr: Any, f: Field, value: Any) -> Any:
    kw = {"label": f.label, "elem_id": f.elem_id, "info": f.info or None}
    if f.kind == "choice":
        return gr.Dropdown(list(f.choices), value=value, **kw)
    if f.kind == "bool":
        return gr.Checkbox(value=value, **kw)
    if f.kind in ("int", "float"):
        return gr.Number(value=value, precision=0 if f.kind == "int" else None, **kw)
    lines = 2 if f.kind in ("paths", "json") else 1
    return gr.Textbox(value=value, lines=lines, max_lines=8, **kw)


def _message(gr: Any, elem_id: str, kind: str) -> Any:
    return gr.Markdown("", visible=False, elem_id=f"{elem_id}__{kind}", elem_classes=[f"field-{kind}"])


def _progress_html(percent: float) -> str:
    return f'<div class="bar"><div style="width:{percent:.1f}%"></div></div>'


def build_board(board: Board, title: str = "glmtune board") -> Any:
    """The gradio ``Blocks`` page of ``board``."""
    import gradio as gr

    start = defaults()
    inputs: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    notes: dict[str, Any] = {}

    def field(key: str) -> None:
        f = BY_KEY[key]
        with gr.Column(visible=applies(f, start), min_width=180) as col:
            inputs[key] = _component(gr, f, start[key])
            if key in NOTED:
                notes[key] = _message(gr, f.elem_id, "note")
            errors[key] = _message(gr, f.elem_id, "error")
        columns[key] = col

    columns: dict[str, Any] = {}
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}\nConfigure a fine-tune, preview its samples, run it, then evaluate, chat and export.")
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Configure", id="configure", elem_id="tab_configure"):
                with gr.Row():
                    start_from = gr.Dropdown(
                        board.config_choices(),
                        value=None,
                        allow_custom_value=True,
                        label="Start from a YAML (configs/ or your own path)",
                        elem_id="start_from",
                        scale=4,
                    )
                    load_btn = gr.Button("Load", elem_id="load_yaml", scale=1)
                load_msg = gr.Markdown("", elem_id="load_message")
                with gr.Row(), gr.Column():
                    run_name = gr.Textbox(value=board.next_name("run"), label="Run name", elem_id="run_name")
                    errors["run.name"] = _message(gr, "run_name", "error")
                gr.Markdown("### Model")
                with gr.Row():
                    for key in ("model.path", "model.dtype", "model.quantization_bit"):
                        field(key)
                errors["model"] = _message(gr, "model", "error")
                gr.Markdown("### Method")
                with gr.Row():
                    for f in FIELDS:
                        if f.section == "method":
                            field(f.key)
                errors["method"] = _message(gr, "method", "error")
                gr.Markdown("### Data")
                with gr.Row():
                    for key in ("data.train", "data.eval"):
                        field(key)
                with gr.Row():
                    for f in FIELDS:
                        if f.section == "data" and f.key not in ("data.train", "data.eval"):
                            field(f.key)
                errors["data"] = _message(gr, "data", "error")
                gr.Markdown("### Training")
                with gr.Row():
                    for f in FIELDS:
                        if f.section == "training":
                            field(f.key)
                errors["training"] = _message(gr, "training", "error")
                inputs[OTHER] = gr.Code(
                    value=start[OTHER], language="yaml", label="Other settings (YAML sections)", elem_id="other"
                )
                errors[OTHER] = _message(gr, "other", "error")
                with gr.Row():
                    check_btn = gr.Button("Check", elem_id="check")
                    launch_btn = gr.Button("Start training", variant="primary", elem_id="launch")
                launch_msg = gr.Markdown("", elem_id="launch_message")
                yaml_view = gr.Code(
                    value=board.yaml_text(start, run_name.value),
                    language="yaml",
                    label="The YAML this run gets",
                    interactive=False,
                    elem_id="yaml_view",
                )
                with gr.Row():
                    save_path = gr.Textbox(label="Save YAML as", elem_id="save_path", scale=4)
                    save_btn = gr.Button("Save YAML", elem_id="save_yaml", scale=1)
                save_msg = gr.Markdown("", elem_id="save_message")

            with gr.Tab("Run", id="run", elem_id="tab_run"):
                with gr.Row():
                    names = board.runs.names()
                    run_pick = gr.Dropdown(
                        names, value=names[0] if names else None, label="Run", elem_id="run_pick", scale=4
                    )
                    refresh_btn = gr.Button("↻", elem_id="refresh_runs", scale=0, min_width=60)
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop", scale=1)
                    resume_btn = gr.Button("Resume", elem_id="resume", scale=1)
                run_msg = gr.Markdown("", elem_id="run_message")
                status = gr.Markdown("no run selected", elem_id="run_status")
                bar = gr.HTML(_progress_html(0), elem_id="run_progress")
                curve = gr.LinePlot(x="step", y="loss", color="series", title="loss", elem_id="run_curve", height=300)
                log = gr.Textbox(label="Log (tail)", lines=12, max_lines=12, interactive=False, elem_id="run_log")
                gr.Markdown("### All runs")
                table = gr.Dataframe(headers=SUMMARY_HEADERS, interactive=False, elem_id="runs_table", wrap=True)
                compare_pick = gr.CheckboxGroup(names, value=names[:3], label="Compare", elem_id="compare_pick")
                compare = gr.LinePlot(
                    x="step", y="loss", color="series", title="loss, overlaid", elem_id="compare_curve", height=300
                )
        timer = gr.Timer(1.0)

        # ------------------------------------------------------------------------------ wiring: configure
        form = [inputs[k] for k in KEYS]
        message_keys = ["run.name", *[f.key for f in FIELDS], OTHER, *GROUPS]
        message_outputs = [errors[k] for k in message_keys] + [notes[k] for k in NOTED]

        def messages(checked: Any) -> list[Any]:
            out = [
                gr.update(value=f"⚠ {checked.errors[k]}" if k in checked.errors else "", visible=k in checked.errors)
                for k in message_keys
            ]
            out += [gr.update(value=checked.notes.get(k, ""), visible=k in checked.notes) for k in NOTED]
            return out

        def show_yaml(name: str, *values: Any) -> str:
            return board.yaml_text(board.values(values), name)

        gr.on(
            [c.change for c in (run_name, *form)],
            show_yaml,
            [run_name, *form],
            yaml_view,
            show_progress="hidden",
            trigger_mode="always_last",
        )

        def visibility(method: str, mode: str) -> list[Any]:
            values = {"method.name": method, "data.mode": mode}
            return [gr.update(visible=applies(f, values)) for f in FIELDS]

        gr.on(
            [inputs["method.name"].change, inputs["data.mode"].change],
            visibility,
            [inputs["method.name"], inputs["data.mode"]],
            [columns[f.key] for f in FIELDS],
            show_progress="hidden",
        )

        def load(path: str) -> list[Any]:
            try:
                values, msg = board.load(path)
            except GlmtuneError as e:
                return [gr.update() for _ in KEYS] + [f"⚠ {e}"]
            return [values[k] for k in KEYS] + [msg]

        load_btn.click(load, start_from, [*form, load_msg])

        def check(name: str, *values: Any) -> list[Any]:
            checked = board.check(board.values(values), name)
            msg = "ready to start" if checked.ok else "fix the fields marked below"
            return [*messages(checked), msg]

        check_btn.click(check, [run_name, *form], [*message_outputs, launch_msg])

        def launch(name: str, *values: Any) -> list[Any]:
            checked, msg = board.launch(board.values(values), name)
            names = board.runs.names()
            if not checked.ok or "run.name" in checked.errors:
                return [*messages(checked), f"⚠ {msg}", gr.update(), gr.update(), gr.update(), gr.update()]
            started = name.strip()
            return [
                *messages(checked),
                msg,
                gr.update(choices=names, value=started),
                gr.update(choices=names, value=[started]),
                board.next_name(started),
                gr.Tabs(selected="run"),
            ]

        launch_btn.click(
            launch, [run_name, *form], [*message_outputs, launch_msg, run_pick, compare_pick, run_name, tabs]
        )

        def save(name: str, path: str, *values: Any) -> str:
            try:
                return board.save_yaml(board.values(values), name, path)
            except GlmtuneError as e:
                return f"⚠ {e}"

        save_btn.click(save, [run_name, save_path, *form], save_msg)

        # ------------------------------------------------------------------------------ wiring: run
        shown = gr.State({})  # what this page last drew, so an unchanged plot is not drawn again

        def refresh(selected: str | None, chosen: list[str] | None, last: dict[str, Any]) -> list[Any]:
            p = board.panel(selected, chosen)
            now = {"curve": (selected, len(p.curve)), "compare": (tuple(chosen or ()), len(p.compare))}
            plots = [p.curve if now["curve"] != last.get("curve") else gr.skip()]
            plots.append(p.compare if now["compare"] != last.get("compare") else gr.skip())
            return [p.status, _progress_html(p.percent), plots[0], p.log, p.table, plots[1], now]

        panel_inputs = [run_pick, compare_pick, shown]
        panel_outputs = [status, bar, curve, log, table, compare, shown]
        timer.tick(refresh, panel_inputs, panel_outputs, show_progress="hidden")
        run_pick.change(refresh, panel_inputs, panel_outputs, show_progress="hidden")
        compare_pick.change(refresh, panel_inputs, panel_outputs, show_progress="hidden")

        def list_runs(selected: str | None, chosen: list[str] | None) -> list[Any]:
            names = board.runs.names()
            pick = selected if selected in names else (names[0] if names else None)
            return [gr.update(choices=names, value=pick), gr.update(choices=names, value=chosen or [])]

        refresh_btn.click(list_runs, [run_pick, compare_pick], [run_pick, compare_pick])

        def act(action: Any) -> Any:
            def go(selected: str | None) -> str:
                try:
                    return action(selected)
                except GlmtuneError as e:
                    return f"⚠ {e}"

            return go

        stop_btn.click(act(board.stop), run_pick, run_msg)
        resume_btn.click(act(board.resume), run_pick, run_msg)
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
    launch_page(demo, host, port, css=CSS)
