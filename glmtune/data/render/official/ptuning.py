"""``chatglm2-ptuning`` (and the shared batch logic of ``chatglm-ptuning``): ``ptuning/main.py``
``preprocess_function_train`` / ``preprocess_function_eval`` of THUDM/ChatGLM2-6B, on a batch as
``datasets.map(batched=True)`` passes it.

Kept on purpose: ADGEN content wrapped in ``[Round 1]``; train padded to source+target+1; with
``ignore_pad_token_for_loss=False`` prompt and padding labelled with the pad id; eval labels from
``tokenizer(text_target=...)`` (``[gMASK] sop`` first, no eos); records with an empty prompt or response dropped
(reported here, silently there); an eval batch left empty refused (the official code raised).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtune.data.record import RecordError
from glmtune.data.render.modes import Mode, ModeSettings, setting
from glmtune.data.render.official.common import (
    BatchError,
    BatchResult,
    column_dict,
    empty_eval_batch,
    encode_official,
    pad_left,
    per_batch,
)
from glmtune.errors import GlmtuneError
from glmtune.families import get_family


@dataclass(frozen=True)
class PtuningSettings(ModeSettings):
    """The data arguments of the official ptuning ``main.py`` (``--prompt-column`` ... as ``preprocess`` flags).
    A training config sets the lengths (``data.max_source_length`` / ``data.max_target_length``, unset: half of
    ``data.max_length``) and ``data.ignore_pad_token_for_loss``; the columns come from the data
    (:meth:`from_source`)."""

    prompt_column: str = setting("content", "column")
    response_column: str = setting("summary", "column")
    history_column: str | None = setting(None, "column")
    max_source_length: int = setting(64, "length", config="max_source_length", half=True)
    max_target_length: int = setting(128, "length", config="max_target_length", half=True)
    ignore_pad_token_for_loss: bool = setting(True, "bool", config="ignore_pad_token_for_loss")
    source_prefix: str = setting("", "text")

    def row_length(self) -> int:
        return self.max_source_length + self.max_target_length

    @classmethod
    def from_source(
        cls,
        mode: str,
        given: dict[str, Any],
        data: Sequence[Path],
        split: str | None,
        fmt: Any,
        columns: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """prompt/response/history columns: ``given`` first, then ``columns`` (our keys, or a LLaMA-Factory entry),
        then the data's format (named or detected); history only when the data has that column."""
        from glmtune.data.formats import detect, get_spec
        from glmtune.data.read import read_paths

        out = dict(given)
        entry = columns if columns and ("formatting" in columns or isinstance(columns.get("columns"), dict)) else None
        for key in ("prompt", "response", "history"):
            if columns and not entry and columns.get(key) and not out.get(f"{key}_column"):
                out[f"{key}_column"] = columns[key]
        if out.get("prompt_column") and out.get("response_column"):
            return out
        raws, _ = read_paths(data, split)
        spec = get_spec(fmt, entry) or detect(raws, str(data[0]))
        if spec.shape != "pairs":
            raise GlmtuneError(f"{data[0]}: the ptuning modes read prompt/response columns, not {spec.name} messages")
        out.setdefault("prompt_column", spec.col("prompt"))
        out.setdefault("response_column", spec.col("response"))
        history = spec.col("history")
        has_history = history and any(isinstance(r.data, dict) and history in r.data for r in raws)
        if "history_column" not in given and has_history:
            out["history_column"] = history
        return {k: v for k, v in out.items() if v is not None}


Kept = tuple[int, Any, Any, Any]  # (index in batch, query, answer, history)


def select(records: list[Any], s: PtuningSettings, result: BatchResult) -> list[Kept]:
    """The records the official loop keeps (``if prompt and response``), in its order of column look-ups."""
    batch = column_dict(records)
    if s.prompt_column not in batch:
        raise BatchError(
            [(i, RecordError(s.prompt_column, "missing (the prompt column)")) for i in range(len(records))]
        )
    kept: list[Kept] = []
    errors = result.errors
    for i, query in enumerate(batch[s.prompt_column]):
        if not query:
            result.notes.append((i, f"dropped: {s.prompt_column} is empty (the official code skips it silently)"))
            continue
        if s.response_column not in batch:
            errors.append((i, RecordError(s.response_column, "missing (the response column)")))
            continue
        answer = batch[s.response_column][i]
        if not answer:
            result.notes.append((i, f"dropped: {s.response_column} is empty (the official code skips it silently)"))
            continue
        history = None
        if s.history_column is not None:
            if s.history_column not in batch:
                errors.append((i, RecordError(s.history_column, "missing (history_column is set)")))
                continue
            history = batch[s.history_column][i]
        kept.append((i, query, answer, history))
    return kept


Pair = tuple[list[int], list[int], bool]  # (prompt ids, answer ids, truncated)


def encoded(
    records: list[Any], s: PtuningSettings, result: BatchResult, encode_pair: Callable[[Any, Any, Any], Pair]
) -> Iterator[tuple[list[int], list[int]]]:
    """Every kept record's ``(prompt ids, answer ids)`` from ``encode_pair(query, answer, history)``, with the
    bookkeeping all four official processors share: a :class:`RecordError` becomes that record's error, the record
    is owned in input order, a cut marks it truncated."""
    for i, query, answer, history in select(records, s, result):
        try:
            a_ids, b_ids, cut = encode_pair(query, answer, history)
        except RecordError as e:
            result.errors.append((i, e))
            continue
        result.owners.append(i)
        if cut:
            result.truncated.add(i)
        yield a_ids, b_ids


def masked_pad(labels: list[int], pad: int, s: PtuningSettings) -> list[int]:
    """``ignore_pad_token_for_loss``: every pad id in the labels becomes -100 (the official list comprehension)."""
    return [(x if x != pad else -100) for x in labels] if s.ignore_pad_token_for_loss else labels


def chatglm2_prompt(query: Any, history: Any, field: str) -> str:
    """``ChatGLMTokenizer.build_prompt(query, history)`` of ChatGLM2 (history pairs unpacked as Python does)."""
    try:
        return get_family("chatglm2").build_prompt(query, list(history) if history is not None else [])
    except (TypeError, ValueError) as e:
        raise RecordError(field, f"expected a list of [query, response] pairs ({type(e).__name__}: {e})") from None


def chatglm2_train(records: list[Any], tokenizer: Any, s: PtuningSettings) -> BatchResult:
    """``preprocess_function_train`` of ChatGLM2-6B ptuning."""
    result = BatchResult()
    max_seq_length = s.max_source_length + s.max_target_length + 1
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    for a_ids, b_ids in encoded(records, s, result, _chatglm2_pair(tokenizer, s, answer_specials=False)):
        input_ids = a_ids + b_ids + [eos]
        labels = [pad] * len(a_ids) + b_ids + [eos]
        pad_len = max_seq_length - len(input_ids)
        input_ids = input_ids + [pad] * pad_len
        labels = masked_pad(labels + [pad] * pad_len, pad, s)
        result.outputs.append({"input_ids": input_ids, "labels": labels})
    result.raise_errors()
    return result


def chatglm2_eval(records: list[Any], tokenizer: Any, s: PtuningSettings) -> BatchResult:
    """``preprocess_function_eval`` of ChatGLM2-6B ptuning (inputs left-padded to the longest of the batch)."""
    result = BatchResult()
    pairs = list(encoded(records, s, result, _chatglm2_pair(tokenizer, s, answer_specials=True)))
    result.raise_errors()
    if not pairs:
        raise empty_eval_batch()
    padded = pad_left([a for a, _ in pairs], tokenizer.pad_token_id)
    for k, (_, target) in enumerate(pairs):
        labels = masked_pad(target, tokenizer.pad_token_id, s)
        result.outputs.append({**{key: v[k] for key, v in padded.items()}, "labels": labels})
    return result


def _chatglm2_pair(tokenizer: Any, s: PtuningSettings, answer_specials: bool) -> Callable[[Any, Any, Any], Pair]:
    """ChatGLM2's prompt (``build_prompt`` after the prefix) and answer, each ``tokenizer(...)`` with truncation
    (the answer with ``[gMASK] sop`` only in eval, where the official code tokenizes it as ``text_target``)."""

    def pair(query: Any, answer: Any, history: Any) -> Pair:
        prompt = s.source_prefix + chatglm2_prompt(query, history, s.history_column or "history")
        a_ids, cut_a = encode_official(tokenizer, prompt, s.prompt_column, True, s.max_source_length)
        b_ids, cut_b = encode_official(tokenizer, answer, s.response_column, answer_specials, s.max_target_length)
        return a_ids, b_ids, cut_a or cut_b

    return pair


MODES = (
    Mode(
        "chatglm2-ptuning",
        "ChatGLM2-6B ptuning preprocess_function_train / _eval",
        PtuningSettings,
        "chatglm2",
        ("train", "eval"),
        process=per_batch(chatglm2_train, chatglm2_eval),
    ),
)
