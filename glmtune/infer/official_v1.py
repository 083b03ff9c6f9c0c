"""The official ChatGLM-6B ``chat`` / ``stream_chat`` helpers, as functions over a model and its tokenizer.

A compatibility API, not a second generation path: it keeps the official keyword semantics (``max_length``,
``num_beams``, caller logits processors, transformers' sampler) so recorded official outputs reproduce exactly
(tests/fidelity). glmtune's own commands generate through :mod:`glmtune.infer.engine`.

Same prompt (bare query without history, else ``[Round i]\\n问：…\\n答：…``; message text kept as text unless
``compat_official_specials``), same defaults (sampling, top_p 0.7, temperature 0.95, max_length 2048), same
``InvalidScoreLogitsProcessor`` and ``process_response``; the caller's history is never mutated. The official
``stream_chat`` never yields its final step (``stream_generate`` breaks before the yield); ``official_stream=True``
reproduces that, the default yields every step.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer
from transformers.tokenization_utils_base import BatchEncoding

from glmtune.families.chatglm import CHATGLM, process_response_v1
from glmtune.infer.sampling import InvalidScoreLogitsProcessor

History = list[tuple[str, str]]


def build_prompt(query: str, history: Sequence[Sequence[str]] | None = None) -> str:
    """The exact string the official ``chat``/``stream_chat`` tokenize."""
    return CHATGLM.build_prompt(query, [(q, r) for q, r in (history or [])])


def _gen_kwargs(
    max_length: int,
    num_beams: int,
    do_sample: bool,
    top_p: float,
    temperature: float,
    logits_processor: LogitsProcessorList | None,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    processors = LogitsProcessorList(list(logits_processor or []))  # the official code appended to the caller's
    processors.append(InvalidScoreLogitsProcessor(CHATGLM.invalid_score_token))
    out: dict[str, Any] = {
        "max_length": max_length,
        "num_beams": num_beams,
        "do_sample": do_sample,
        "top_p": top_p,
        "temperature": temperature,
        "logits_processor": processors,
        **kwargs,
    }
    if "max_new_tokens" in kwargs:  # takes precedence anyway; dropping max_length only silences a warning
        out.pop("max_length")
    if not out["do_sample"]:  # no effect on greedy/beam search; transformers 5 warns about them
        out.pop("top_p")
        out.pop("temperature")
    return out


def _inputs(model: Any, tokenizer: Any, query: str, history: Sequence[Sequence[str]] | None, official: bool) -> Any:
    """The prompt batch: the official ``tokenizer([prompt])`` (``official``: special spellings in the messages
    become control tokens), else the same ids with message text kept as text."""
    prompt = build_prompt(query, history)
    if official:
        return tokenizer([prompt], return_tensors="pt").to(model.device)
    ids = tokenizer.build_inputs_with_special_tokens(tokenizer.encode_plain(prompt))
    return BatchEncoding({"input_ids": torch.tensor([ids], device=model.device)})


def _history(history: Sequence[Sequence[str]] | None, query: str, response: str) -> History:
    return [(q, r) for q, r in (history or [])] + [(query, response)]


@torch.no_grad()
def chat(
    model: Any,
    tokenizer: Any,
    query: str,
    history: Sequence[Sequence[str]] | None = None,
    max_length: int = 2048,
    num_beams: int = 1,
    do_sample: bool = True,
    top_p: float = 0.7,
    temperature: float = 0.95,
    logits_processor: LogitsProcessorList | None = None,
    compat_official_specials: bool = False,
    **kwargs: Any,
) -> tuple[str, History]:
    """Official ``model.chat``: (response, history + [(query, response)]); message text stays text unless
    ``compat_official_specials`` (the official tokenizer split ``<sop>``, ``[MASK]``... out of it)."""
    inputs = _inputs(model, tokenizer, query, history, compat_official_specials)
    gen = _gen_kwargs(max_length, num_beams, do_sample, top_p, temperature, logits_processor, kwargs)
    outputs = model.generate(**inputs, **gen)
    new_ids = outputs.tolist()[0][inputs["input_ids"].shape[1] :]
    response = process_response_v1(tokenizer.decode(new_ids))
    return response, _history(history, query, response)


class _Cancelled(StoppingCriteria):
    """Stops generation once the consumer of :func:`stream_chat` has gone away."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _QueueStreamer(BaseStreamer):
    """Hands each generated token (batch of one) to the consuming thread; the prompt is skipped."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.queue.put(("token", value.reshape(-1).tolist()))

    def end(self) -> None:
        self.queue.put(("end", None))


@torch.no_grad()
def stream_chat(
    model: Any,
    tokenizer: Any,
    query: str,
    history: Sequence[Sequence[str]] | None = None,
    max_length: int = 2048,
    do_sample: bool = True,
    top_p: float = 0.7,
    temperature: float = 0.95,
    logits_processor: LogitsProcessorList | None = None,
    official_stream: bool = False,
    compat_official_specials: bool = False,
    **kwargs: Any,
) -> Iterator[tuple[str, History]]:
    """Official ``model.stream_chat``: yields (response so far, history + [(query, response)]) per new token.

    ``official_stream=True`` drops the final yield as the official code does (its last response is one token
    shorter than ``chat``'s); by default the last yield equals ``chat``. ``compat_official_specials``: as ``chat``.
    """
    inputs = _inputs(model, tokenizer, query, history, compat_official_specials)
    gen = _gen_kwargs(max_length, 1, do_sample, top_p, temperature, logits_processor, kwargs)
    gen.pop("num_beams")
    streamer = _QueueStreamer()
    cancel = _Cancelled()
    gen["stopping_criteria"] = StoppingCriteriaList([*gen.get("stopping_criteria", []), cancel])
    errors: list[BaseException] = []

    def run() -> None:
        try:
            model.generate(**inputs, streamer=streamer, **gen)
        except BaseException as e:  # re-raised in the consuming thread
            errors.append(e)
            streamer.queue.put(("end", None))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    new_ids: list[int] = []
    pending = False
    try:
        while True:
            kind, value = streamer.queue.get()
            if kind == "end":
                break
            if pending:
                yield _step(tokenizer, query, history, new_ids)
            new_ids.extend(value)
            pending = True
    finally:
        cancel.event.set()
        thread.join()
    if errors:
        raise errors[0]
    if pending and not official_stream:
        yield _step(tokenizer, query, history, new_ids)


def _step(tokenizer: Any, query: str, history: Sequence[Sequence[str]] | None, ids: list[int]) -> tuple[str, History]:
    response = process_response_v1(tokenizer.decode(ids))
    return response, _history(history, query, response)


__all__ = ["InvalidScoreLogitsProcessor", "build_prompt", "chat", "stream_chat"]
