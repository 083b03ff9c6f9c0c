"""Pieces the official processors share: the tokenizer calls they make, with the transformers semantics of the
version each was recorded with (4.40 / 4.30 / 4.27 agree on everything used here).

Our exact tokenizers provide the SentencePiece encoding (including the ``sop``-piece quirk of ``encode``); what
transformers itself did around it (which inputs ``encode`` accepts, how ``truncation=True, max_length`` cuts, how
a batch is padded) is reproduced here, so the official modes do not depend on the installed transformers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from glmtune.data.record import RecordError, type_name
from glmtune.errors import GlmtuneError


class BatchError(GlmtuneError):
    """The official function raised on this batch; ``errors`` names each record (index) that made it raise."""

    def __init__(self, errors: list[tuple[int, RecordError]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"record {i + 1}: {e}" for i, e in errors))


def empty_eval_batch() -> BatchError:
    """The official ptuning eval raises ValueError when no record of a batch has both a prompt and a response."""
    return BatchError(
        [
            (
                0,
                RecordError(
                    "",
                    "no record of this eval batch has both a prompt and a response "
                    "(the official code raises ValueError on the empty batch)",
                ),
            )
        ]
    )


@dataclass
class BatchResult:
    """Outputs of one batch: ``outputs[k]`` came from record ``owners[k]`` (an index into the batch)."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    errors: list[tuple[int, RecordError]] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    truncated: set[int] = field(default_factory=set)

    def raise_errors(self) -> None:
        if self.errors:
            raise BatchError(self.errors)


def column_dict(records: list[Any]) -> dict[str, list[Any]]:
    """The batch as ``datasets.map(batched=True)`` passes it: every top-level key of any record, missing → None."""
    keys: dict[str, None] = {}
    for r in records:
        if not isinstance(r, dict):
            raise BatchError([(records.index(r), RecordError("record", f"expected a JSON object, got {type_name(r)}"))])
        keys.update(dict.fromkeys(r))
    return {k: [r.get(k) for r in records] for k in keys}


def pieces_to_ids(tokenizer: Any, tokens: list[Any]) -> list[int]:
    """``convert_tokens_to_ids`` of the official SentencePiece tokenizers: special names, else the piece id."""
    sp, specials = tokenizer.sp_model, tokenizer.special_tokens
    out = []
    for t in tokens:
        if not isinstance(t, str):
            raise RecordError("", f"a list of pieces holds {type_name(t)}")
        out.append(specials[t] if t in specials else sp.PieceToId(t))
    return out


def encode_input(
    tokenizer: Any, text: Any, field: str, pieces: Callable[[Any, list[Any]], list[int]] = pieces_to_ids
) -> list[int]:
    """``get_input_ids`` of a slow tokenizer: a string is tokenized, a list of strings is taken as pieces, a list
    of ints as ids; anything else is refused (the official code raised ``ValueError: Input ... is not valid``)."""
    if isinstance(text, str):
        return tokenizer.encode(text, add_special_tokens=False)
    if isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], str):
        try:
            return pieces(tokenizer, list(text))
        except RecordError as e:
            raise RecordError(field, e.message) from None
    if isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], int):
        return list(text)
    raise RecordError(field, f"expected a string, got {type_name(text)} (the official tokenizer refuses it)")


def truncate(ids: list[int], n_special: int, max_length: int | None) -> tuple[list[int], bool]:
    """``truncation=True, max_length=N`` on one sequence: cut from the right so that ids + specials fit; when the
    sequence is not longer than what must go, transformers only logs an error and keeps it whole."""
    total = len(ids) + n_special
    if max_length and total > max_length:
        remove = total - max_length
        if len(ids) > remove:
            return ids[:-remove], True
    return ids, False


def encode_official(
    tokenizer: Any, text: Any, field: str, add_special_tokens: bool, max_length: int | None
) -> tuple[list[int], bool]:
    """``tokenizer.encode(text=..., add_special_tokens=..., truncation=True, max_length=...)`` of ChatGLM2/3."""
    ids = encode_input(tokenizer, text, field)
    ids, cut = truncate(ids, 2 if add_special_tokens else 0, max_length)
    if add_special_tokens:
        ids = tokenizer.get_prefix_tokens() + ids
    return ids, cut


def pad_left(batch: list[list[int]], pad_id: int) -> dict[str, list[list[int]]]:
    """``tokenizer(..., padding=True)`` of ChatGLM2/3: left padding, mask 0 and position 0 on the pads."""
    longest = max(len(x) for x in batch)
    out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "position_ids": []}
    for ids in batch:
        d = longest - len(ids)
        out["input_ids"].append([pad_id] * d + ids)
        out["attention_mask"].append([0] * d + [1] * len(ids))
        out["position_ids"].append([0] * d + list(range(len(ids))))
    return out


def python_error(field: str, e: Exception, official: str) -> RecordError:
    """Our message for an input on which the official code raised ``e`` (kept short, one line)."""
    detail = str(e).splitlines()[0] if str(e) else type(e).__name__
    return RecordError(field, f"{official} ({type(e).__name__}: {detail})")


def per_record(fn: Callable[[Any, Any, Any], tuple[dict[str, Any], bool]]) -> Callable[..., BatchResult]:
    """A mode's ``process`` from ``fn(record, tokenizer, settings) -> (output, truncated)`` (one record at a time;
    a :class:`RecordError` refuses that record only)."""

    def process(records: list[Any], tokenizer: Any, variant: str, settings: Any) -> BatchResult:
        result = BatchResult()
        for i, record in enumerate(records):
            try:
                out, cut = fn(record, tokenizer, settings)
            except RecordError as e:
                result.errors.append((i, e))
                continue
            result.outputs.append(out)
            result.owners.append(i)
            if cut:
                result.truncated.add(i)
        return result

    return process


def per_batch(train: Callable[..., BatchResult], eval_: Callable[..., BatchResult]) -> Callable[..., BatchResult]:
    """A mode's ``process`` from batch functions ``(records, tokenizer, settings)`` of the train and eval variants;
    a :class:`BatchError` (the official function raised on the batch) becomes the batch's errors."""

    def process(records: list[Any], tokenizer: Any, variant: str, settings: Any) -> BatchResult:
        try:
            return (train if variant == "train" else eval_)(records, tokenizer, settings)
        except BatchError as e:
            return BatchResult(errors=e.errors)

    return process
