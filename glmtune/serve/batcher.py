"""Continuous batching: a scheduler over the generation core (:class:`glmtune.infer.decode.Decoder`).

One scheduler thread owns the model. Each iteration it admits waiting requests (FIFO, within the batch size and a
prefill budget) and runs one backend step: a decode step for every running request, the newly admitted ones
prefilled and merged into the running batch (so a request joins at the next step, not after the current batch),
finished rows dropped (ChatGLM-6B and GLM-5: the waiting requests generated together by ``model.generate``).
Sampling, stopping, text and reasoning deltas and replies are the core's, exactly as for ``glmtune chat`` and
``predict``; this module adds the queue, the thread, cancellation and the delivery of events to asyncio loops.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from glmtune.infer.decode import Decoder
from glmtune.infer.engine import Engine, GenerationParams, Reply
from glmtune.infer.rows import STREAMED, Event, Row
from glmtune.serve.json_mode import JsonConstraint

log = logging.getLogger("glmtune.serve")
__all__ = ["STREAMED", "Batcher", "Event", "Job", "QueueFull"]


class QueueFull(Exception):
    """More requests are waiting than the server accepts."""


@dataclass(eq=False)
class Job(Row):
    """One request in the batcher; consume it with :meth:`events` (async) or :meth:`iter_events` (threads)."""

    loop: asyncio.AbstractEventLoop | None = None

    def __post_init__(self) -> None:
        self._queue: Any = asyncio.Queue() if self.loop is not None else queue.SimpleQueue()

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


class Batcher(Decoder):
    """Schedules :class:`Job` s onto ``engine``; ``max_batch_size=1`` serves one request at a time."""

    def __init__(
        self,
        engine: Engine,
        max_batch_size: int = 32,
        max_queue: int = 1024,
        max_prefill_tokens: int = 16384,
        backend: str = "auto",
    ) -> None:
        super().__init__(engine, backend)
        self.max_batch_size = max(1, max_batch_size)
        self.max_queue = max_queue
        self.max_prefill_tokens = max_prefill_tokens
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
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
        job = self.row(
            prompt,
            params,
            tools_available,
            presence_penalty,
            frequency_penalty,
            starts,
            starts_after,
            json,
            cls=Job,
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
                        self.emit(job, ("error", f"generation failed: {type(e).__name__}: {e}"))
                self.backend.reset()
            self.flush()
        with self._cond:
            left = [*self._waiting, *self.backend.rows]
            self._waiting.clear()
        for job in left:
            self.emit(job, ("error", "the server is shutting down"))
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
