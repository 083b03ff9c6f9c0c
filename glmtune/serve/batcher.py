"""Continuous batching over the :class:`~glmtune.infer.Engine`: many requests, one forward pass per step.

One scheduler thread owns the model. Each iteration it runs one decode step for every running request, prefills
newly arrived requests as one left-padded batch and merges their KV cache into the running one (so a request
joins at the next step, not after the current batch), and drops finished rows. Every row samples with its own
parameters and seed (:mod:`glmtune.serve.sampling`), so requests with different settings share a batch.

Families whose model runs the native GLM forward (ChatGLM2/3, GLM-4, with LoRA or a P-Tuning prefix) use that
loop; ChatGLM-6B's own model class uses dynamic batching instead: waiting requests are generated together by
``model.generate`` with the same per-row sampling and stopping.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from glmtune.infer.engine import Engine, GenerationParams, Reply
from glmtune.serve.backends import ContinuousBackend, GenerateBackend
from glmtune.serve.json_mode import JsonConstraint
from glmtune.serve.sampling import RowSampling, sample
from glmtune.serve.textstream import TextStream

log = logging.getLogger("glmtune.serve")
Event = tuple[str, Any]  # ("delta", str) | ("reasoning", str) | ("done", Reply) | ("error", str)
STREAMED = ("delta", "reasoning")  # the kinds that come many times; the others end a request


class QueueFull(Exception):
    """More requests are waiting than the server accepts."""


@dataclass(eq=False)
class Job:
    """One request in the batcher; consume it with :meth:`events` (async) or :meth:`iter_events` (threads)."""

    prompt: list[int]
    params: GenerationParams
    tools_available: bool
    sampling: RowSampling
    stream: TextStream
    loop: asyncio.AbstractEventLoop | None = None
    new_ids: list[int] = field(default_factory=list)
    cancelled: bool = False
    finished: bool = False

    def __post_init__(self) -> None:
        self._queue: Any = asyncio.Queue() if self.loop is not None else queue.SimpleQueue()

    def cancel(self) -> None:
        """Stop generating for this request (the client went away)."""
        self.cancelled = True

    def _put_many(self, events: list[Event]) -> None:
        for ev in events:
            self._queue.put_nowait(ev)

    async def events(self) -> AsyncIterator[Event]:
        """Events until the final one; text (or reasoning) deltas that piled up while the consumer was busy come
        as one."""
        ev = await self._queue.get()
        while True:
            nxt = None
            if ev[0] in STREAMED:
                parts = [ev[1]]
                while not self._queue.empty():
                    nxt = self._queue.get_nowait()
                    if nxt[0] != ev[0]:
                        break
                    parts.append(nxt[1])
                    nxt = None
                ev = (ev[0], "".join(parts))
            yield ev
            if ev[0] not in STREAMED:
                return
            ev = nxt if nxt is not None else await self._queue.get()

    def iter_events(self, timeout: float = 600.0) -> Iterator[Event]:
        while True:
            ev = self._queue.get(timeout=timeout)
            yield ev
            if ev[0] not in STREAMED:
                return

    async def result(self) -> Reply:
        """The final reply (raises RuntimeError when generation failed)."""
        async for kind, value in self.events():
            if kind == "done":
                return value
            if kind == "error":
                raise RuntimeError(value)
        raise RuntimeError("generation ended without a reply")


class Batcher:
    """Schedules :class:`Job` s onto ``engine``; ``max_batch_size=1`` serves one request at a time."""

    def __init__(
        self,
        engine: Engine,
        max_batch_size: int = 32,
        max_queue: int = 1024,
        max_prefill_tokens: int = 16384,
        backend: str = "auto",
    ) -> None:
        self.engine = engine
        self.max_batch_size = max(1, max_batch_size)
        self.max_queue = max_queue
        self.max_prefill_tokens = max_prefill_tokens
        cfg = engine.model.config
        self.context = int(
            getattr(cfg, "max_position_embeddings", None)
            or getattr(cfg, "seq_length", None)
            or getattr(cfg, "max_sequence_length", None)
            or 2048
        )
        if backend == "auto":
            backend = "continuous" if engine.family.continuous_batching else "generate"
        self.backend = ContinuousBackend(self) if backend == "continuous" else GenerateBackend(self)
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._pending: list[tuple[Job, Event]] = []
        self._closed = False
        self.completed = 0
        self._thread = threading.Thread(target=self._run, name="glmtune-batcher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------------ public
    def submit(
        self,
        prompt: list[int],
        params: GenerationParams,
        tools_available: bool = False,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        loop: asyncio.AbstractEventLoop | None = None,
        starts: tuple[tuple[int, ...], ...] = (),
        starts_after: int | None = None,
        json: JsonConstraint | None = None,
    ) -> Job:
        """Queue a request; pass the running ``loop`` to consume its events with ``async for``; ``starts``: ids
        one of which the reply must begin with (a forced tool call); ``json``: JSON mode."""
        job = Job(
            prompt=list(prompt),
            params=params,
            tools_available=tools_available,
            sampling=RowSampling(params, presence_penalty, frequency_penalty, starts, starts_after, json),
            stream=TextStream(
                self.engine.tokenizer,
                self.engine.family,
                params.stop,
                tools_available,
                opened=self.engine.opens_reasoning(prompt),
            ),
            loop=loop,
        )
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are already waiting")
            self._waiting.append(job)
            self._cond.notify()
        return job

    @property
    def running(self) -> int:
        return len(self.backend.rows)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the scheduler thread; waiting and running requests get an error event."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    # ------------------------------------------------------------------------------------------ scheduler
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._waiting and not self.backend.rows:
                    self._cond.wait()
                if self._closed:
                    break
                new = self._admit()
            try:
                with torch.inference_mode():
                    self.backend.step(new)
            except Exception as e:  # a bug or a device failure: fail the requests involved, keep serving
                log.exception("generation step failed")
                for job in {*self.backend.rows, *new}:
                    if not job.finished:
                        job.finished = True
                        self._emit(job, ("error", f"generation failed: {type(e).__name__}: {e}"))
                self.backend.reset()
            self.flush()
        with self._cond:
            left = [*self._waiting, *self.backend.rows]
            self._waiting.clear()
        for job in left:
            self._emit(job, ("error", "the server is shutting down"))
        self.flush()

    def _admit(self) -> list[Job]:
        """Waiting jobs that fit into the batch now (FIFO; cancelled ones are dropped)."""
        new: list[Job] = []
        tokens = 0
        room = self.max_batch_size - len(self.backend.rows)
        while self._waiting and len(new) < room and self.backend.accepts(new):
            job = self._waiting[0]
            if job.cancelled:
                self._waiting.popleft()
                continue
            if new and tokens + len(job.prompt) > self.max_prefill_tokens:
                break
            tokens += len(job.prompt)
            new.append(self._waiting.popleft())
        return new

    def advance(self, job: Job, token: int) -> bool:
        """Record ``job``'s next token, emit its text; True when the job is finished."""
        if job.finished:
            return True
        if job.cancelled:
            job.finished = True
            return True
        engine = self.engine
        job.new_ids.append(token)
        stopped = token in engine.stop_ids
        done = (
            stopped
            or len(job.new_ids) >= job.params.max_new_tokens
            or len(job.prompt) + len(job.new_ids) >= self.context
        )
        if not done:
            delta, done = job.stream.update(job.new_ids)
            thought = job.stream.take_reasoning()
            if thought:
                self._emit(job, ("reasoning", thought))
            if delta:
                self._emit(job, ("delta", delta))
        if done:
            self.complete(job)
        return done

    def complete(self, job: Job) -> None:
        """Emit ``job``'s final :class:`Reply` (and the rest of its text)."""
        reply = self.engine.finish(len(job.prompt), job.new_ids, job.tools_available, job.params, job.stream.opened)
        thought = job.stream.finish_reasoning(reply)
        if thought:
            self._emit(job, ("reasoning", thought))
        rest = job.stream.finish(reply)
        if rest:
            self._emit(job, ("delta", rest))
        self._emit(job, ("done", reply))
        job.finished = True
        self.completed += 1

    def sample(self, logits: torch.Tensor, jobs: list[Job]) -> list[int]:
        return sample(
            logits,
            [j.sampling for j in jobs],
            [j.prompt for j in jobs],
            [j.new_ids for j in jobs],
            self.engine.family.invalid_score_token,
        )

    def _emit(self, job: Job, event: Event) -> None:
        self._pending.append((job, event))

    def flush(self) -> None:
        """Deliver pending events: one wake-up per event loop, one text delta per request."""
        pending, self._pending = self._pending, []
        by_loop: dict[Any, dict[Job, list[Event]]] = {}
        for job, ev in pending:
            evs = by_loop.setdefault(job.loop, {}).setdefault(job, [])
            if ev[0] in STREAMED and evs and evs[-1][0] == ev[0]:
                evs[-1] = (ev[0], evs[-1][1] + ev[1])
            else:
                evs.append(ev)
        for loop, jobs in by_loop.items():
            if loop is None:
                for job, evs in jobs.items():
                    job._put_many(evs)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_deliver, jobs)


def _deliver(jobs: dict[Job, list[Event]]) -> None:
    for job, evs in jobs.items():
        job._put_many(evs)
