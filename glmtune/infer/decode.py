"""The generation core: rows of token ids decoded step by step, sampled per row, stopped, streamed as text.

Every glmtune command generates here: ``chat``, ``predict``, ``eval`` and ``demo`` through
:class:`~glmtune.infer.engine.Engine` (a :class:`Decoder` run to completion in the caller's thread), ``serve`` and
``webui`` through :class:`~glmtune.serve.batcher.Batcher` (a :class:`Decoder` that admits new rows between steps
from a thread of its own). So one request with one seed gives the same text from any of them.

- :class:`~glmtune.infer.rows.Row`: one request (prompt ids, :class:`GenerationParams`, its own sampler
  :class:`~glmtune.infer.sampling.RowSampling` and :class:`~glmtune.infer.textstream.TextStream`).
- A backend (:mod:`glmtune.infer.backends`) runs the model for a set of rows; it sees the :class:`Decoder` only
  through the :class:`~glmtune.infer.rows.Scheduler` protocol (sample / advance / complete / flush).
- :class:`Decoder` owns everything else: per-row sampling, stop ids, length and context limits, stop strings,
  text and reasoning deltas, and the final :class:`Reply` (reasoning split off and tool calls parsed by the
  family, in :meth:`Engine.finish`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from glmtune.infer.backends import ContinuousBackend, GenerateBackend
from glmtune.infer.params import GenerationParams
from glmtune.infer.rows import Event, Row
from glmtune.infer.sampling import Constraint, RowSampling, sample
from glmtune.infer.textstream import TextStream

Deliver = Callable[[list[tuple[Row, Event]]], None]


def context_length(config: Any) -> int:
    """The longest prompt + reply a model takes (from its config)."""
    return int(
        getattr(config, "max_position_embeddings", None)
        or getattr(config, "seq_length", None)
        or getattr(config, "max_sequence_length", None)
        or 2048
    )


class Decoder:
    """Token bookkeeping over one engine and backend (implements :class:`~glmtune.infer.rows.Scheduler`);
    :meth:`run` decodes rows to the end in the calling thread."""

    def __init__(self, engine: Any, backend: str = "auto") -> None:
        self.engine = engine
        self.context = context_length(engine.model.config)
        if backend == "auto":
            backend = "continuous" if engine.family.continuous_batching else "generate"
        self.backend: ContinuousBackend | GenerateBackend = (
            ContinuousBackend(self) if backend == "continuous" else GenerateBackend(self)
        )
        self._pending: list[tuple[Any, Event]] = []
        self._deliver: Deliver | None = None
        self.completed = 0

    def row(
        self,
        prompt: list[int],
        params: GenerationParams,
        tools_available: bool = False,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        starts: tuple[tuple[int, ...], ...] = (),
        starts_after: int | None = None,
        json: Constraint | None = None,
        cls: type[Row] = Row,
        **extra: Any,
    ) -> Row:
        """A new row (``cls``: a :class:`Row` subclass, ``extra`` its fields); ``starts``: ids one of which the
        reply (or, with ``starts_after``, what follows that token) must begin with; ``json``: JSON mode."""
        engine = self.engine
        return cls(
            prompt=list(prompt),
            params=params,
            tools_available=tools_available,
            sampling=RowSampling(params, presence_penalty, frequency_penalty, starts, starts_after, json),
            stream=TextStream(
                engine.tokenizer, engine.family, params.stop, tools_available, opened=engine.opens_reasoning(prompt)
            ),
            **extra,
        )

    def run(self, rows: list[Row], deliver: Deliver | None = None) -> None:
        """Decode ``rows`` together until every one is finished; ``deliver`` gets the events as they come."""
        self._deliver = deliver
        new = list(rows)
        try:
            while new or self.backend.rows:
                with torch.inference_mode():
                    self.backend.step(new)
                new = []
                self.flush()
        finally:
            self._deliver = None
            self.backend.reset()

    # ------------------------------------------------------------------------------------------ Scheduler
    def advance(self, row: Row, token: int) -> bool:
        """Record ``row``'s next token, emit its text; True when the row is finished."""
        if row.finished:
            return True
        if row.cancelled:
            row.finished = True
            return True
        row.new_ids.append(token)
        done = (
            token in self.engine.stop_ids
            or len(row.new_ids) >= row.params.max_new_tokens
            or len(row.prompt) + len(row.new_ids) >= self.context
        )
        if not done:
            delta, done = row.stream.update(row.new_ids)
            thought = row.stream.take_reasoning()
            if thought:
                self.emit(row, ("reasoning", thought))
            if delta:
                self.emit(row, ("delta", delta))
        if done:
            self.complete(row)
        return done

    def complete(self, row: Row) -> None:
        """Emit ``row``'s final :class:`Reply` (and the rest of its reasoning and text)."""
        reply = self.engine.finish(len(row.prompt), row.new_ids, row.tools_available, row.params, row.stream.opened)
        thought = row.stream.finish_reasoning(reply)
        if thought:
            self.emit(row, ("reasoning", thought))
        rest = row.stream.finish(reply)
        if rest:
            self.emit(row, ("delta", rest))
        row.reply = reply
        self.emit(row, ("done", reply))
        row.finished = True
        self.completed += 1

    def sample(self, logits: torch.Tensor, rows: list[Row]) -> list[int]:
        return sample(
            logits,
            [r.sampling for r in rows],
            [r.prompt for r in rows],
            [r.new_ids for r in rows],
            self.engine.family.invalid_score_token,
        )

    def emit(self, row: Row, event: Event) -> None:
        self._pending.append((row, event))

    def flush(self) -> None:
        """Hand the pending events to :meth:`run`'s ``deliver``."""
        events, self._pending = self._pending, []
        if self._deliver is not None and events:
            self._deliver(events)
