"""The after tab: evaluate a checkpoint (predict + official metrics), chat with it, export it.

Each action is the library's own: ``glmtune eval`` (:func:`glmtune.commands.evaluate.evaluate_model`), the chat
page's session over the serving batcher (:class:`glmtune.webui.app.ChatSession`), and ``glmtune export``
(:func:`glmtune.commands.export.export_checkpoint`). Models load inside the board process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError
from glmtune.train.resume import complete_checkpoints

VARIANTS = ("finetune-demo", "ptuning")


def is_model_dir(path: Path) -> bool:
    """A directory chat/eval/export can load: an adapter, a P-Tuning checkpoint or a full model."""
    return (path / "adapter_config.json").is_file() or (path / "config.json").is_file()


def checkpoints(output_dir: Path) -> list[str]:
    """What a run can be evaluated/exported from: its final output first, then its checkpoints, newest first."""
    found = [output_dir] if is_model_dir(output_dir) else []
    found += list(reversed(complete_checkpoints(output_dir)))
    return [str(p) for p in found]


def evaluate(
    checkpoint: str, data: str, variant: str, batch_size: int, max_new_tokens: int, out: Path | None = None
) -> tuple[dict[str, float], list[list[Any]]]:
    """Official metrics of ``checkpoint`` on ``data``, and (id, prediction, reference) rows; the predictions are
    written to ``out`` (JSON lines) when given."""
    from glmtune.commands.evaluate import evaluate_model
    from glmtune.infer.predict import write_predictions

    if not str(checkpoint or "").strip():
        raise GlmtuneError("choose a checkpoint to evaluate")
    path = Path(str(data or "").strip())
    if not str(data or "").strip() or not path.exists():
        raise GlmtuneError(f"evaluation data {str(data or '')!r}: no such file")
    if variant not in VARIANTS:
        raise GlmtuneError(f"metric variant {variant!r}: choose {' or '.join(VARIANTS)}")
    metrics, results = evaluate_model(Path(checkpoint), path, None, variant, int(batch_size), int(max_new_tokens))
    if out is not None:
        write_predictions(out, results)
    return metrics, [[p.id, p.prediction, p.reference] for p in results]


def export(checkpoint: str, out_dir: str, layout: str, dtype: str, force: bool) -> str:
    """Merge ``checkpoint`` into a full model at ``out_dir`` (``layout`` native or original); a message."""
    from glmtune.commands.export import export_checkpoint

    if not str(checkpoint or "").strip():
        raise GlmtuneError("choose a checkpoint to export")
    if not str(out_dir or "").strip():
        raise GlmtuneError("export to: give an output directory")
    path, title = export_checkpoint(
        Path(checkpoint), Path(out_dir.strip()), layout, None, None if dtype in ("", "keep") else dtype, bool(force)
    )
    return f"wrote {layout} {title} checkpoint to {path}"


class ChatModel:
    """The one model the board has loaded for chat (loading another replaces it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded: str | None = None
        self.batcher: Any = None
        self.session: Any = None

    def load(self, checkpoint: str) -> str:
        from glmtune.serve.server import build
        from glmtune.webui.app import ChatSession

        if not str(checkpoint or "").strip():
            raise GlmtuneError("choose a checkpoint to chat with")
        with self.lock:
            self.close()
            _, batcher = build(Path(checkpoint), None, max_batch_size=4)
            self.batcher, self.session, self.loaded = batcher, ChatSession(batcher), checkpoint
        return f"chatting with {checkpoint} ({batcher.engine.family.title})"

    def submit(self, message: str, history: list[dict[str, str]], max_tokens: int, temperature: float) -> Iterator:
        """The chat page's streaming answer: (input box, messages shown, history) updates."""
        if self.session is None:
            yield message, [*history, {"role": "assistant", "content": "[load a checkpoint for chat first]"}], history
            return
        yield from self.session.submit(message, history, "", int(max_tokens), float(temperature), 0.8)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.batcher = self.session = self.loaded = None
