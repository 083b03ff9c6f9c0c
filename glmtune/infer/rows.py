"""What the generation core passes around: a :class:`Row` (one request being generated), its events, and the
:class:`Scheduler` protocol, all that a backend (:mod:`glmtune.infer.backends`) sees of whoever schedules it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from glmtune.infer.params import GenerationParams, Reply
from glmtune.infer.sampling import RowSampling
from glmtune.infer.textstream import TextStream

Event = tuple[str, Any]  # ("delta", str) | ("reasoning", str) | ("done", Reply) | ("error", str)
STREAMED = ("delta", "reasoning")  # the kinds that come many times; the others end a request


@dataclass(eq=False)
class Row:
    """One request being generated: its prompt, parameters, sampler and text stream, and the ids so far."""

    prompt: list[int]
    params: GenerationParams
    tools_available: bool
    sampling: RowSampling
    stream: TextStream
    new_ids: list[int] = field(default_factory=list)
    cancelled: bool = False
    finished: bool = False
    reply: Reply | None = None

    def cancel(self) -> None:
        """Stop generating for this request (the client went away)."""
        self.cancelled = True


class Scheduler(Protocol):
    """What a backend needs from whoever schedules its rows (:class:`glmtune.infer.decode.Decoder`)."""

    engine: Any  # model, tokenizer, device, stop_ids
    context: int  # the longest prompt + reply the model takes

    def sample(self, logits: torch.Tensor, rows: list[Any]) -> list[int]:
        """The next token of every row (``logits``: rows x vocab)."""
        ...

    def advance(self, row: Any, token: int) -> bool:
        """Record ``row``'s next token; True when the row is finished."""
        ...

    def complete(self, row: Any) -> None:
        """Finish ``row`` (its reply) although no stop came."""
        ...

    def flush(self) -> None:
        """Hand the events so far to their consumers."""
        ...
