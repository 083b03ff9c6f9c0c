"""The configure and preview tabs: the form, its messages, the YAML, check / start / save, and the preview."""

from __future__ import annotations

from typing import Any

from glmtune.board.checks import GROUPS, Checked
from glmtune.board.form import BY_KEY, FIELDS, OTHER, applies, defaults
from glmtune.board.session import KEYS, Board
from glmtune.board.widgets import component, message
from glmtune.errors import GlmtuneError

NOTED = ("model.path", "data.train", "data.eval")  # fields that show what was detected
MESSAGE_KEYS = ["run.name", *[f.key for f in FIELDS], OTHER, *GROUPS]


def layout(gr: Any, board: Board, page: Any) -> None:
    """The configure tab's components, into ``page``."""
    start = defaults()
    page.inputs, page.errors, page.notes, page.columns = {}, {}, {}, {}

    def field(key: str) -> None:
        f = BY_KEY[key]
        with gr.Column(visible=applies(f, start), min_width=180) as col:
            page.inputs[key] = component(gr, f, start[key])
            if key in NOTED:
                page.notes[key] = message(gr, f.elem_id, "note")
            page.errors[key] = message(gr, f.elem_id, "error")
        page.columns[key] = col

    def section(title: str, name: str, *rows: list[str]) -> None:
        gr.Markdown(f"### {title}")
        for keys in rows:
            with gr.Row():
                for key in keys:
                    field(key)
        page.errors[name] = message(gr, name, "error")

    with gr.Row():
        page.start_from = gr.Dropdown(
            board.config_choices(),
            value=None,
            allow_custom_value=True,
            label="Start from a YAML (configs/ or your own path)",
            elem_id="start_from",
            scale=4,
        )
        page.load_btn = gr.Button("Load", elem_id="load_yaml", scale=1)
    page.load_msg = gr.Markdown("", elem_id="load_message")
    with gr.Row(), gr.Column():
        page.run_name = gr.Textbox(value=board.next_name("run"), label="Run name", elem_id="run_name")
        page.errors["run.name"] = message(gr, "run_name", "error")
    keys = {s: [f.key for f in FIELDS if f.section == s] for s in GROUPS}
    files = ["data.train", "data.eval"]
    section("Model", "model", keys["model"])
    section("Method", "method", keys["method"])
    section("Data", "data", files, [k for k in keys["data"] if k not in files])
    section("Training", "training", keys["training"])
    page.inputs[OTHER] = gr.Code(
        value=start[OTHER], language="yaml", label="Other settings (YAML sections)", elem_id="other"
    )
    page.errors[OTHER] = message(gr, "other", "error")
    with gr.Row():
        page.check_btn = gr.Button("Check", elem_id="check")
        page.launch_btn = gr.Button("Start training", variant="primary", elem_id="launch")
    page.launch_msg = gr.Markdown("", elem_id="launch_message")
    page.yaml_view = gr.Code(
        value=board.yaml_text(start, page.run_name.value),
        language="yaml",
        label="The YAML this run gets",
        interactive=False,
        elem_id="yaml_view",
    )
    with gr.Row():
        page.save_path = gr.Textbox(label="Save YAML as", elem_id="save_path", scale=4)
        page.save_btn = gr.Button("Save YAML", elem_id="save_yaml", scale=1)
    page.save_msg = gr.Markdown("", elem_id="save_message")


def layout_preview(gr: Any, page: Any) -> None:
    with gr.Row():
        page.preview_k = gr.Slider(1, 20, value=3, step=1, label="Samples to show", elem_id="preview_k")
        page.preview_btn = gr.Button("Preview", variant="primary", elem_id="preview_btn")
    page.preview_stats = gr.Markdown("", elem_id="preview_stats")
    page.preview_html = gr.HTML("", elem_id="preview_samples")


def wire(gr: Any, board: Board, page: Any) -> None:
    """Callbacks of the configure and preview tabs (the run tab's components must exist)."""
    form = [page.inputs[k] for k in KEYS]
    outputs = [page.errors[k] for k in MESSAGE_KEYS] + [page.notes[k] for k in NOTED]

    def messages(checked: Checked) -> list[Any]:
        errors, notes = checked.errors, checked.notes
        out = [gr.update(value=f"⚠ {errors[k]}" if k in errors else "", visible=k in errors) for k in MESSAGE_KEYS]
        return out + [gr.update(value=notes.get(k, ""), visible=k in notes) for k in NOTED]

    def show_yaml(name: str, *values: Any) -> str:
        return board.yaml_text(board.values(values), name)

    triggers = [c.change for c in (page.run_name, *form)]
    gr.on(
        triggers, show_yaml, [page.run_name, *form], page.yaml_view, show_progress="hidden", trigger_mode="always_last"
    )

    def visibility(method: str, mode: str) -> list[Any]:
        values = {"method.name": method, "data.mode": mode}
        return [gr.update(visible=applies(f, values)) for f in FIELDS]

    gr.on(
        [page.inputs["method.name"].change, page.inputs["data.mode"].change],
        visibility,
        [page.inputs["method.name"], page.inputs["data.mode"]],
        [page.columns[f.key] for f in FIELDS],
        show_progress="hidden",
    )

    def load(path: str) -> list[Any]:
        try:
            values, msg = board.load(path)
        except GlmtuneError as e:
            return [gr.update() for _ in KEYS] + [f"⚠ {e}"]
        return [values[k] for k in KEYS] + [msg]

    page.load_btn.click(load, page.start_from, [*form, page.load_msg])

    def check(name: str, *values: Any) -> list[Any]:
        checked = board.check(board.values(values), name)
        return [*messages(checked), "ready to start" if checked.ok else "⚠ fix the fields marked below"]

    page.check_btn.click(check, [page.run_name, *form], [*outputs, page.launch_msg])

    def launch(name: str, *values: Any) -> list[Any]:
        checked, msg = board.launch(board.values(values), name)
        if not checked.ok or checked.errors:
            return [*messages(checked), f"⚠ {msg}", *[gr.update()] * 5]
        names, started = board.runs.names(), name.strip()
        return [
            *messages(checked),
            msg,
            gr.update(choices=names, value=started),
            gr.update(choices=names, value=[started]),
            gr.update(choices=names),
            board.next_name(started),
            gr.Tabs(selected="run"),
        ]

    extra = [page.run_pick, page.compare_pick, page.after_run, page.run_name, page.tabs]
    page.launch_btn.click(launch, [page.run_name, *form], [*outputs, page.launch_msg, *extra])

    def save(name: str, path: str, *values: Any) -> str:
        try:
            return board.save_yaml(board.values(values), name, path)
        except GlmtuneError as e:
            return f"⚠ {e}"

    page.save_btn.click(save, [page.run_name, page.save_path, *form], page.save_msg)

    def preview(name: str, k: float, *values: Any) -> list[Any]:
        checked, shown, stats = board.preview(board.values(values), name, int(k))
        return [*messages(checked), stats, shown]

    page.preview_btn.click(
        preview, [page.run_name, page.preview_k, *form], [*outputs, page.preview_stats, page.preview_html]
    )
