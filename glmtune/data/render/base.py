"""What every default-mode renderer shares: a plan of turns, batched text encoding, labels and truncation.

A renderer turns a normalised :class:`Record` into a :class:`Plan`: literal ids (special tokens) and texts still to
encode, grouped in turns. All texts of a batch of records are encoded in one call (duplicates once: a system
prompt or tool list shared by every record costs one encode), then each plan is assembled into ``input_ids`` and
``labels``.

Labels (the official ChatGLM3 rule, shared by all families): the body of a trained turn is labelled, and so is the
one token right after it (the next role token, or eos), so the model learns where a reply ends.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np

from glmtune.data.record import DataIssue, Record, RecordError
from glmtune.families import Family

IGNORE = -100
Piece = str | tuple[int, ...]
Encoder = Callable[[list[str], int], list[list[int]]]
"""Text to encode with the renderer's text encoder, or literal token ids."""


class Turn(NamedTuple):
    """One message: ``head`` ids never trained (the role token), ``body`` pieces trained when ``loss``."""

    head: tuple[int, ...]
    body: list[Piece]
    loss: bool
    keep_end: bool = False  # when cut, keep the end of the body (a prompt ending in "答：") instead of its start


@dataclass
class Plan:
    prefix: tuple[int, ...]
    turns: list[Turn]
    end: tuple[int, ...]


@dataclass
class Sample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


class Renderer:
    """Base class of the per-family default renderers (``render/<family>.py``)."""

    family_name: ClassVar[str] = ""

    def __init__(self, tokenizer: Any, family: Family) -> None:
        self.tokenizer = tokenizer
        self.family = family
        self.threads = 1  # encoder threads (1 inside worker processes)
        self._encode = self.make_encoder()

    def make_encoder(self) -> Encoder:
        """Batch text encoder: (texts, threads) → ids (no special tokens)."""
        raise NotImplementedError

    def plan(self, record: Record) -> Plan:
        raise NotImplementedError

    def encode_texts(self, texts: list[str]) -> list[list[int]]:
        return self._encode(texts, self.threads) if texts else []

    # ------------------------------------------------------------------ batch
    def render_into(self, records: Sequence[Record], max_length: int | None, out: Flat) -> list[DataIssue]:
        """Render ``records`` (one encode call for all their texts) appending to ``out``; issues of the rest."""
        plans: list[tuple[int, Plan]] = []
        issues: list[DataIssue] = []
        for i, record in enumerate(records):
            try:
                plans.append((i, self.plan(record)))
            except RecordError as e:
                issues.append(e.issue(record.origin))
        texts: dict[str, int] = {}
        for _, p in plans:
            for turn in p.turns:
                for piece in turn.body:
                    if type(piece) is str and piece not in texts:
                        texts[piece] = len(texts)
        encoded = self.encode_texts(list(texts))
        lookup = {text: array("i", encoded[k]) for text, k in texts.items()}  # one int conversion per distinct text
        for i, p in plans:
            out.add(i, p, lookup, max_length)
        return issues

    def render(
        self, records: Sequence[Record], max_length: int | None
    ) -> tuple[list[tuple[int, Sample]], list[DataIssue]]:
        """(index, sample) for every record that renders, and the issues of those that do not."""
        flat = Flat()
        issues = self.render_into(records, max_length, flat)
        return list(zip(flat.owners, flat.samples(), strict=True)), issues


# ---------------------------------------------------------------------------------------------------- assembly
def _body_ids(body: list[Piece], lookup: dict[str, Any]) -> list[int]:
    if len(body) == 1:
        piece = body[0]
        return list(lookup[piece]) if type(piece) is str else list(piece)  # type: ignore[index, arg-type]
    out: list[int] = []
    for piece in body:
        out += lookup[piece] if type(piece) is str else piece  # type: ignore[index, arg-type]
    return out


def assemble(plan: Plan, lookup: dict[str, Any], max_length: int | None) -> Sample:
    """``input_ids`` / ``labels`` of a plan, truncated to ``max_length`` (see :func:`fit`)."""
    turns = [(t.head, _body_ids(t.body, lookup), t.loss, t.keep_end) for t in plan.turns]
    truncated = False
    if max_length:
        total = len(plan.prefix) + len(plan.end) + sum(len(h) + len(b) for h, b, _, _ in turns)
        if total > max_length:
            turns = fit(len(plan.prefix) + len(plan.end), turns, max_length)
            truncated = True
    ids = list(plan.prefix)
    labels = [IGNORE] * len(ids)
    stop = False
    for head, body, loss, _ in turns:
        if head:
            ids += head
            if stop:
                labels.append(head[0])
                labels += [IGNORE] * (len(head) - 1)
                stop = False
            else:
                labels += [IGNORE] * len(head)
        if body:
            ids += body
            if loss:
                labels += body
            elif stop:
                labels.append(body[0])
                labels += [IGNORE] * (len(body) - 1)
            else:
                labels += [IGNORE] * len(body)
            stop = loss
        elif loss:
            stop = True
    ids += plan.end
    if plan.end:
        labels.append(plan.end[0] if stop else IGNORE)
        labels += [IGNORE] * (len(plan.end) - 1)
    if max_length and len(ids) > max_length:  # only when even the role tokens do not fit
        ids, labels = ids[:max_length], labels[:max_length]
    return Sample(ids, labels, truncated)


EncTurn = tuple[tuple[int, ...], list[int], bool, bool]


def fit(fixed: int, turns: list[EncTurn], max_length: int) -> list[EncTurn]:
    """The turns of an over-long sample cut to ``max_length`` (``fixed`` = prefix + end tokens).

    1. Whole messages: keep the longest run of leading turns that ends with a trained turn and fits (later
       messages are dropped; the sample still ends with eos).
    2. If not even the first trained reply fits: keep the turns up to it, role tokens whole, and share the room
       between the prompt and the reply as LLaMA-Factory does (a short side keeps all of its tokens). Prompt bodies
       are cut from the oldest; the reply keeps its start; eos still follows it.
    """
    run, best = fixed, None
    for k, (head, body, loss, _) in enumerate(turns):
        run += len(head) + len(body)
        if run > max_length:
            break
        if loss:
            best = k
    if best is not None:
        return turns[: best + 1]
    first = next((k for k, t in enumerate(turns) if t[2]), len(turns) - 1)
    keep = turns[: first + 1]
    room = max_length - fixed - sum(len(t[0]) for t in keep)
    if room <= 0:
        return [(h, [], loss, ke) for h, _, loss, ke in keep]
    source = sum(len(t[1]) for t in keep[:-1])
    target = len(keep[-1][1])
    new_target, new_source = split_room(source, target, room)
    out: list[EncTurn] = []
    budget = new_source
    shares = []
    for head, body, loss, keep_end in reversed(keep[:-1]):  # newest prompt messages keep the most
        take = min(len(body), budget)
        budget -= take
        shares.append((head, body, loss, keep_end, take))
    for head, body, loss, keep_end, take in reversed(shares):
        cut = body if take == len(body) else (body[len(body) - take :] if keep_end else body[:take])
        out.append((head, cut, loss, keep_end))
    head, body, loss, keep_end = keep[-1]
    out.append((head, body[:new_target], loss, keep_end))
    return out


def split_room(source: int, target: int, room: int) -> tuple[int, int]:
    """(target, source) lengths sharing ``room`` tokens (LLaMA-Factory's ``infer_seqlen``)."""
    if target * 2 < room:
        max_target = room
    elif source * 2 < room:
        max_target = room - source
    else:
        max_target = int(room * (target / (source + target)))
    new_target = min(max_target, target)
    new_source = min(max(room - new_target, 0), source)
    return new_target, new_source


class Flat:
    """Rendered samples appended to one flat id list and a loss-mask byte string (cheap to build, cheap to turn
    into int32 arrays that cross process boundaries and become Arrow); labels = ids where the mask is set."""

    def __init__(self) -> None:
        self.owners: list[int] = []
        self.lengths: list[int] = []
        self.ids = array("i")
        self.mask = bytearray()
        self.cut: list[int] = []

    def add(self, owner: int, plan: Plan, lookup: dict[str, Any], max_length: int | None) -> None:
        start = len(self.ids)
        write(plan, lookup, self.ids, self.mask)
        n = len(self.ids) - start
        if max_length and n > max_length:
            del self.ids[start:], self.mask[start:]
            sample = assemble(plan, lookup, max_length)
            self.ids.fromlist(sample.input_ids)
            self.mask += bytes(x != IGNORE for x in sample.labels)
            n = len(sample.input_ids)
            self.cut.append(owner)
        self.owners.append(owner)
        self.lengths.append(n)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lengths int64, input_ids int32, labels int32) as flat arrays."""
        ids = np.frombuffer(self.ids, dtype=np.int32)
        labels = ids.copy()
        labels[np.frombuffer(self.mask, dtype=np.uint8) == 0] = IGNORE
        return np.array(self.lengths, dtype=np.int64), ids, labels

    def samples(self) -> list[Sample]:
        _, ids_np, labels_np = self.arrays()
        ids, labels, cut = ids_np.tolist(), labels_np.tolist(), set(self.cut)
        out, pos = [], 0
        for owner, n in zip(self.owners, self.lengths, strict=True):
            out.append(Sample(ids[pos : pos + n], labels[pos : pos + n], owner in cut))
            pos += n
        return out


_ONE = b"\x01"


def write(plan: Plan, lookup: dict[str, Any], ids: array, mask: bytearray) -> None:
    """:func:`assemble` without truncation, appending ids (int32 array: distinct texts are converted once, then
    copied) and a loss mask (the fast path; same result)."""
    ids.extend(plan.prefix)
    mask += bytes(len(plan.prefix))
    stop = False
    for turn in plan.turns:
        head = turn.head
        if head:
            ids.extend(head)
            if stop:
                mask += _ONE
                mask += bytes(len(head) - 1)
                stop = False
            else:
                mask += bytes(len(head))
        loss = turn.loss
        for piece in turn.body:
            t = lookup[piece] if type(piece) is str else piece  # type: ignore[index]
            if not t:
                continue
            ids.extend(t)
            if loss:
                mask += _ONE * len(t)
            elif stop:
                mask += _ONE
                mask += bytes(len(t) - 1)
                stop = False
            else:
                mask += bytes(len(t))
        if loss:
            stop = True
    end = plan.end
    if end:
        ids.extend(end)
        if stop:
            mask += _ONE
            mask += bytes(len(end) - 1)
        else:
            mask += bytes(len(end))


# ---------------------------------------------------------------------------------------------------- encoders
def sentencepiece_encoder(tokenizer: Any, official_encode: bool) -> Encoder:
    """Batch SentencePiece encoding; ``official_encode`` also maps pieces spelled like a special token (``sop``)
    to the special id, as the official ``encode``/``__call__`` do (``build_single_message`` does not)."""
    sp = tokenizer.sp_model
    remap: dict[int, int] = {}
    if official_encode:
        for name, special in tokenizer.special_tokens.items():
            pid = sp.PieceToId(name)
            if pid != sp.unk_id() and sp.IdToPiece(pid) == name:
                remap[pid] = special

    def encode(texts: list[str], threads: int) -> list[list[int]]:
        out = sp.encode(texts, num_threads=threads) if len(texts) > 1 else [sp.encode(t) for t in texts]
        if remap:
            out = [[remap.get(i, i) for i in ids] if any(i in remap for i in ids) else ids for ids in out]
        return out

    return encode


def raise_unsupported(src: str, family: Family, what: str) -> None:
    raise RecordError(src, f"{family.title} has no {what}; use a ChatGLM3 or GLM-4 model for this data")
