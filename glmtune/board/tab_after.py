"""The after tab: pick a run's checkpoint, evaluate it, chat with it, export it."""

from __future__ import annotations

from typing import Any

from glmtune.board import after
from glmtune.board.session import Board
from glmtune.board.widgets import guarded
from glmtune.errors import GlmtuneError


def layout(gr: Any, board: Board, page: Any) -> None:
    names = board.runs.names()
    with gr.Row():
        page.after_run = gr.Dropdown(names, value=names[0] if names else None, label="Run", elem_id="after_run")
        page.after_ckpt = gr.Dropdown([], label="Checkpoint", elem_id="after_ckpt", allow_custom_value=True)
        page.after_refresh = gr.Button("↻", elem_id="after_refresh", scale=0, min_width=60)
    gr.Markdown("### Evaluate (predict + official ROUGE / BLEU-4)")
    with gr.Row():
        page.eval_data = gr.Textbox(label="Data file", elem_id="eval_data", scale=3)
        page.eval_variant = gr.Dropdown(list(after.VARIANTS), value="finetune-demo", label="Metrics")
        page.eval_tokens = gr.Number(64, precision=0, label="Max new tokens", elem_id="eval_tokens")
        page.eval_batch = gr.Number(8, precision=0, label="Batch size", elem_id="eval_batch")
    page.eval_btn = gr.Button("Evaluate", variant="primary", elem_id="eval_btn")
    page.eval_msg = gr.Markdown("", elem_id="eval_message")
    page.eval_metrics = gr.JSON(label="Metrics", elem_id="eval_metrics")
    page.eval_rows = gr.Dataframe(
        headers=["id", "prediction", "reference"], interactive=False, wrap=True, elem_id="eval_rows"
    )
    gr.Markdown("### Chat")
    with gr.Row():
        page.chat_load = gr.Button("Load for chat", elem_id="chat_load")
        page.chat_tokens = gr.Slider(1, 1024, value=64, step=1, label="Max new tokens", elem_id="chat_tokens")
        page.chat_temp = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature", elem_id="chat_temp")
    page.chat_msg = gr.Markdown("", elem_id="chat_status")
    page.chatbot = gr.Chatbot(label="Chat", height=320, elem_id="chat_bot", feedback_options=None)
    page.chat_history = gr.State([])
    with gr.Row():
        page.chat_box = gr.Textbox(placeholder="Type and press Enter", show_label=False, elem_id="chat_box", scale=8)
        page.chat_send = gr.Button("Send", variant="primary", elem_id="chat_send", scale=1)
    gr.Markdown("### Export (LoRA merged or P-Tuning prefix attached: a full checkpoint)")
    with gr.Row():
        page.export_dir = gr.Textbox(label="Output directory", elem_id="export_dir", scale=3)
        page.export_layout = gr.Radio(["native", "original"], value="native", label="Layout", elem_id="export_layout")
        page.export_dtype = gr.Dropdown(["keep", "fp32", "bf16", "fp16"], value="keep", label="dtype")
        page.export_force = gr.Checkbox(False, label="Replace if it exists", elem_id="export_force")
    page.export_btn = gr.Button("Export", variant="primary", elem_id="export_btn")
    page.export_msg = gr.Markdown("", elem_id="export_message")


def wire(gr: Any, board: Board, page: Any) -> None:
    def pick_run(name: str | None) -> list[Any]:
        try:
            found, data = board.checkpoints(name), board.eval_data(name)
        except GlmtuneError as e:
            return [gr.update(choices=[], value=None), gr.update(), f"⚠ {e}"]
        return [gr.update(choices=found, value=found[0] if found else None), data, ""]

    picked = [page.after_ckpt, page.eval_data, page.eval_msg]
    page.after_run.change(pick_run, page.after_run, picked)

    def refresh(name: str | None) -> list[Any]:
        names = board.runs.names()
        pick = name if name in names else (names[0] if names else None)
        return [gr.update(choices=names, value=pick), *pick_run(pick)]

    page.after_refresh.click(refresh, page.after_run, [page.after_run, *picked])
    page.after_tab.select(refresh, page.after_run, [page.after_run, *picked])

    def evaluate(name: str | None, ckpt: str, data: str, variant: str, tokens: float, batch: float) -> list[Any]:
        try:
            metrics, rows, msg = board.evaluate(name, ckpt, data, variant, int(batch or 8), int(tokens or 64))
        except GlmtuneError as e:
            return [f"⚠ {e}", None, None]
        return [msg, metrics, rows[:50]]

    page.eval_btn.click(
        evaluate,
        [page.after_run, page.after_ckpt, page.eval_data, page.eval_variant, page.eval_tokens, page.eval_batch],
        [page.eval_msg, page.eval_metrics, page.eval_rows],
    )
    page.chat_load.click(guarded(board.chat.load), page.after_ckpt, page.chat_msg)
    chat_in = [page.chat_box, page.chat_history, page.chat_tokens, page.chat_temp]
    chat_out = [page.chat_box, page.chatbot, page.chat_history]
    page.chat_box.submit(board.chat.submit, chat_in, chat_out)
    page.chat_send.click(board.chat.submit, chat_in, chat_out)
    export_in = [page.after_ckpt, page.export_dir, page.export_layout, page.export_dtype, page.export_force]
    page.export_btn.click(guarded(board.export), export_in, page.export_msg)
