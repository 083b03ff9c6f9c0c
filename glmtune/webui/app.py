"""``glmtune webui``: a gradio chat page (streaming, history, system prompt, sampling settings, clear/regenerate).

Replies come from the same :class:`~glmtune.serve.batcher.Batcher` as the API server, so several browser
tabs chatting at once are generated in one batch. The page uses no external assets (system fonts only), so it
works on machines without internet access.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError
from glmtune.infer.engine import GenerationParams
from glmtune.serve.batcher import Batcher, QueueFull

History = list[dict[str, str]]
Update = tuple[str, History, History]  # (input box, chatbot messages, history state)


@dataclass
class Settings:
    """Initial values of the page's generation controls."""

    max_tokens: int = 512
    temperature: float = 0.8
    top_p: float = 0.8
    system: str = ""


THINKING = "[thinking]"
"""What precedes a reasoning model's thoughts while they stream (the answer then replaces them)."""


class ChatSession:
    """The page's callbacks, independent of gradio (tested directly)."""

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher
        self.engine = batcher.engine

    def reply(self, history: History, system: str, max_tokens: int, temperature: float, top_p: float) -> Iterator[str]:
        """The assistant's text after ``history`` (ending with the user's turn), growing as it streams."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system.strip() else []
        messages += [{"role": m["role"], "content": m["content"]} for m in history]
        prompt = self.engine.prompt_ids(self.engine.build_messages(messages))
        room = self.batcher.context - len(prompt)
        if room < 1:
            yield f"[error] the conversation is longer than the model's context ({self.batcher.context} tokens)"
            return
        params = GenerationParams(
            max_new_tokens=max(1, min(int(max_tokens), room)),
            temperature=float(temperature),
            top_p=float(top_p),
            do_sample=float(temperature) > 0,
        )
        try:
            job = self.batcher.submit(prompt, params)
        except QueueFull:
            yield "[error] the server is busy, try again in a moment"
            return
        text = thought = ""
        try:
            for kind, value in job.iter_events():
                if kind == "delta":
                    text += value
                    yield text
                elif kind == "reasoning":  # shown until the answer begins, never kept in the history
                    thought += value
                    if not text:
                        yield f"{THINKING} {thought}"
                elif kind == "done":
                    yield value.text
                else:
                    yield f"{text}\n[error] {value}"
        finally:
            job.cancel()

    def submit(
        self, message: str, history: History, system: str, max_tokens: int, temperature: float, top_p: float
    ) -> Iterator[Update]:
        """Send ``message``: the input box clears and the answer streams into the chat."""
        if not message.strip():
            yield message, history, history
            return
        history = [*history, {"role": "user", "content": message}]
        yield from self._stream(history, system, max_tokens, temperature, top_p)

    def regenerate(
        self, history: History, system: str, max_tokens: int, temperature: float, top_p: float
    ) -> Iterator[Update]:
        """Answer the last user message again."""
        while history and history[-1]["role"] == "assistant":
            history = history[:-1]
        if not history:
            yield "", history, history
            return
        yield from self._stream(history, system, max_tokens, temperature, top_p)

    def _stream(
        self, history: History, system: str, max_tokens: int, temperature: float, top_p: float
    ) -> Iterator[Update]:
        shown = [*history, {"role": "assistant", "content": ""}]
        yield "", shown, history
        text = ""
        for text in self.reply(history, system, max_tokens, temperature, top_p):
            shown = [*history, {"role": "assistant", "content": text}]
            yield "", shown, history
        final = [*history, {"role": "assistant", "content": text}]
        yield "", final, final


def build_demo(batcher: Batcher, title: str = "glmtune", settings: Settings | None = None) -> Any:
    """The gradio ``Blocks`` page for ``batcher``'s model."""
    import gradio as gr

    s = settings or Settings()
    session = ChatSession(batcher)
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}\n{batcher.engine.family.title}")
        chatbot = gr.Chatbot(label="Chat", height=460, elem_id="chatbot", feedback_options=None)
        history = gr.State([])
        with gr.Row():
            box = gr.Textbox(
                placeholder="Type a message and press Enter",
                show_label=False,
                scale=8,
                elem_id="message",
                autofocus=True,
            )
            send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
        with gr.Row():
            regen = gr.Button("Regenerate", elem_id="regenerate")
            clear = gr.Button("Clear", elem_id="clear")
        with gr.Accordion("System prompt and generation settings", open=False):
            system = gr.Textbox(label="System prompt", value=s.system, lines=2, elem_id="system")
            max_tokens = gr.Slider(
                1,
                max(1, batcher.context),
                value=min(s.max_tokens, batcher.context),
                step=1,
                label="Max new tokens",
                elem_id="max_tokens",
            )
            temperature = gr.Slider(
                0.0, 2.0, value=s.temperature, step=0.05, label="Temperature (0 = greedy)", elem_id="temperature"
            )
            top_p = gr.Slider(0.0, 1.0, value=s.top_p, step=0.05, label="Top-p", elem_id="top_p")
        knobs = [system, max_tokens, temperature, top_p]
        outputs = [box, chatbot, history]
        box.submit(session.submit, [box, history, *knobs], outputs)
        send.click(session.submit, [box, history, *knobs], outputs)
        regen.click(session.regenerate, [history, *knobs], outputs)
        clear.click(lambda: ("", [], []), None, outputs, queue=False)
    return demo


def run_webui(
    model: Path,
    adapter: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    dtype: str = "auto",
    settings: Settings | None = None,
    max_batch_size: int = 16,
) -> None:
    """Load ``model`` and serve the chat page until interrupted."""
    from glmtune.serve.server import build, tune_process

    check_port(port)
    engine, batcher = build(model, adapter, dtype=dtype, max_batch_size=max_batch_size)
    tune_process(engine)
    title = f"glmtune · {Path(model).resolve().name}"
    demo = build_demo(batcher, title=title, settings=settings)
    demo.queue(default_concurrency_limit=max_batch_size)
    try:
        launch_page(demo, host, port)
    finally:
        batcher.close()


def check_port(port: int) -> None:
    """Refuse a port outside 1..65535 before anything is loaded."""
    if not 0 < port < 65536:
        raise GlmtuneError(f"--port {port}: must be between 1 and 65535")


def launch_page(demo: Any, host: str, port: int, css: str | None = None) -> None:
    """Serve a gradio page as every glmtune page is served: local fonts, no share link, no analytics."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    font = gr.themes.Font("system-ui")
    theme = gr.themes.Default(font=[font, "sans-serif"], font_mono=["ui-monospace", "monospace"])
    extra = {"css": css} if css else {}
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        show_error=True,
        theme=theme,
        footer_links=[],
        pwa=False,
        ssr_mode=False,
        **extra,
    )
