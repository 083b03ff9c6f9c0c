"""What every default-mode renderer shares: a plan of turns, batched text encoding, labels and truncation.

A renderer turns a normalised :class:`Record` into a :class:`Plan`: literal ids (special tokens) and texts still to
encode, grouped in turns. All texts of a batch of records are encoded in one call (duplicates once: a system
prompt or tool list shared by every record costs one encode), then each plan is assembled into ``input_ids`` and
``labels``.

Labels (the official ChatGLM3 rule, shared by all families): the body of a trained turn is labelled, and so is the
one token right after it (the next role token, or eos), so the model learns where a reply ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, ClassVar, NamedTuple

import numpy as np

from glmtune.data.record import DataIssue, Record, RecordError
from glmtune.families import Family

IGNORE = -100
Piece = str | tuple[int, ...]
"""Text to encode with the renderer's text encoder, or literal token ids."""
Encoder = Callable[[list[str], int], list[Sequence[int]]]
"""Batch text encoder: (texts, threads) → the ids of each text (lists or int32 arrays), no special tokens."""


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
    reasoning: str = "last"  # which assistant turns keep their reasoning (families with a reasoning format)

    def __init__(self, tokenizer: Any, family: Family) -> None:
        self.tokenizer = tokenizer
        self.family = family
        self.threads = 1  # encoder threads (1 inside worker processes)
        self.mask_history = False  # train only the last trained reply of each record
        self._encode = self.make_encoder()

    def make_encoder(self) -> Encoder:
        """Batch text encoder: (texts, threads) → ids (no special tokens)."""
        raise NotImplementedError

    def plan(self, record: Record) -> Plan:
        raise NotImplementedError

    def encode_texts(self, texts: list[str]) -> list[list[int]]:
        """The ids of each text (no special tokens) as lists."""
        return [ids if type(ids) is list else list(map(int, ids)) for ids in self._encode_batch(texts)]

    def _encode_batch(self, texts: list[str]) -> list[Sequence[int]]:
        return self._encode(texts, self.threads) if texts else []

    # ------------------------------------------------------------------ batch
    def render_flat(self, records: Sequence[Record], max_length: int | None) -> tuple[Flat, list[DataIssue]]:
        """Render ``records`` (one encode call for all their texts) as a :class:`Flat`; issues of the rest."""
        plans: list[tuple[int, Plan]] = []
        issues: list[DataIssue] = []
        for i, record in enumerate(records):
            try:
                plan = self.plan(record)
                plans.append((i, last_reply_only(plan) if self.mask_history else plan))
            except RecordError as e:
                issues.append(e.issue(record.origin))
        layout = Layout.of([p for _, p in plans])
        return layout.assemble(layout.encoded(self._encode_batch), plans, max_length), issues

    def render(
        self, records: Sequence[Record], max_length: int | None
    ) -> tuple[list[tuple[int, Sample]], list[DataIssue]]:
        """(index, sample) for every record that renders, and the issues of those that do not."""
        flat, issues = self.render_flat(records, max_length)
        return list(zip(flat.owners, flat.samples(), strict=True)), issues


def last_reply_only(plan: Plan) -> Plan:
    """``plan`` with every trained turn but the last one made prompt (``data.mask_history``, the official GLM-4
    ``combine: true``: the conversation is one sample whose last reply is learned)."""
    last = max((k for k, t in enumerate(plan.turns) if t.loss), default=None)
    if last is None:
        return plan
    turns = [t if k == last or not t.loss else t._replace(loss=False) for k, t in enumerate(plan.turns)]
    return Plan(plan.prefix, turns, plan.end)


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


class Layout:
    """The plans of a batch as segments: each piece (a text, or literal ids) is one segment naming its source (the
    distinct pieces, numbered in first-seen order). Built in one pass; the token-level work is then done by
    numpy in :meth:`assemble` (a gather of the sources, the loss mask repeated per segment)."""

    def __init__(self) -> None:
        self.keys: dict[Piece, int] = {}  # distinct piece → source number
        self.segments: list[int] = []  # source number of every segment, in output order
        self.loss: list[bool] = []  # per segment: trained
        self.marks: list[int] = []  # segments whose first token is labelled (it follows a trained turn)
        self.bounds: list[int] = []  # per plan: the number of segments at its end

    def encoded(self, encode: Callable[[list[str]], list[Sequence[int]]]) -> list[Sequence[int]]:
        """The ids of every source, in order: the texts encoded in one ``encode`` call, literal ids as they are."""
        texts = iter(encode([k for k in self.keys if type(k) is str]))
        return [next(texts) if type(k) is str else k for k in self.keys]

    @classmethod
    def of(cls, plans: Sequence[Plan]) -> Layout:
        layout = cls()
        keys, segments, loss, marks, bounds = layout.keys, layout.segments, layout.loss, layout.marks, layout.bounds
        for plan in plans:
            if plan.prefix:
                segments.append(keys.setdefault(plan.prefix, len(keys)))
                loss.append(False)
            for turn in plan.turns:
                if turn.head:
                    segments.append(keys.setdefault(turn.head, len(keys)))
                    loss.append(False)
                trained = turn.loss
                for piece in turn.body:
                    segments.append(keys.setdefault(piece, len(keys)))
                    loss.append(trained)
                if trained:
                    marks.append(len(segments))
            if plan.end:
                segments.append(keys.setdefault(plan.end, len(keys)))
                loss.append(False)
            while marks and marks[-1] == len(segments):  # nothing follows the last trained turn
                marks.pop()
            bounds.append(len(segments))
        return layout

    def assemble(self, sources: list[Sequence[int]], plans: Sequence[tuple[int, Plan]], max_length: int | None) -> Flat:
        """All samples as one flat id array and loss mask (``sources``: the ids of each source, in order);
        samples over ``max_length`` are cut by :func:`assemble` and spliced in."""
        lengths = np.fromiter(map(len, sources), np.int64, count=len(sources))
        starts = np.zeros(len(sources) + 1, np.int64)
        np.cumsum(lengths, out=starts[1:])
        src = _concat(sources, int(starts[-1]))
        seg = np.array(self.segments, np.int64)
        seg_len = lengths[seg]
        out = np.zeros(len(seg) + 1, np.int64)
        np.cumsum(seg_len, out=out[1:])
        total = int(out[-1])
        index = np.int32 if max(total, len(src)) < 1 << 31 else np.int64
        gather = np.repeat((starts[seg] - out[:-1]).astype(index), seg_len)
        gather += np.arange(total, dtype=index)
        ids = src[gather]
        mask = np.repeat(np.array(self.loss, np.bool_), seg_len)
        ends = out[np.array([0, *self.bounds], np.int64)]
        if self.marks:
            marks = np.array(self.marks, np.int64)
            pos = out[marks]
            owner = np.searchsorted(np.array(self.bounds, np.int64), marks, side="right")
            mask[pos[pos < ends[owner + 1]]] = True  # a mark past its sample's end marks nothing
        sample_lengths = np.diff(ends)
        flat = Flat([i for i, _ in plans], sample_lengths, ids, mask)
        if max_length:
            over = np.flatnonzero(sample_lengths > max_length).tolist()
            if over:
                flat.cut_to(over, [self._cut(plans[k][1], sources, max_length) for k in over], ends)
        return flat

    def _cut(self, plan: Plan, sources: list[Sequence[int]], max_length: int) -> Sample:
        keys = self.keys
        lookup = {p: list(map(int, sources[keys[p]])) for t in plan.turns for p in t.body if type(p) is str}
        return assemble(plan, lookup, max_length)


def _concat(sources: list[Sequence[int]], total: int) -> np.ndarray:
    """The ids of all sources as one int32 array (arrays are joined; lists of Python ints read one pass)."""
    if not any(type(s) is list for s in sources):
        # "unsafe": an empty literal () reads as a float64 array; every other source is already integer ids
        return np.concatenate(sources, dtype=np.int32, casting="unsafe") if sources else np.zeros(0, np.int32)
    return np.fromiter(chain.from_iterable(sources), np.int32, count=total)


@dataclass
class Flat:
    """Rendered samples of a batch: one flat int32 id array and a loss mask (labels = ids where it is set)."""

    owners: list[int]  # per sample: the index of its record in the batch
    lengths: np.ndarray  # per sample: its number of tokens
    ids: np.ndarray  # int32
    mask: np.ndarray  # bool
    cut: list[int] = field(default_factory=list)  # owners of the samples truncated to max_length

    def labels(self) -> np.ndarray:
        return np.where(self.mask, self.ids, np.int32(IGNORE))

    def cut_to(self, which: list[int], samples: list[Sample], ends: np.ndarray) -> None:
        """Replace samples ``which`` (positions, ascending) by their truncated versions."""
        ids: list[np.ndarray] = []
        mask: list[np.ndarray] = []
        pos = 0
        for k, sample in zip(which, samples, strict=True):
            ids += [self.ids[pos : ends[k]], np.array(sample.input_ids, np.int32)]
            mask += [self.mask[pos : ends[k]], np.array(sample.labels, np.int64) != IGNORE]
            pos = ends[k + 1]
            self.lengths[k] = len(sample.input_ids)
            self.cut.append(self.owners[k])
        self.ids = np.concatenate([*ids, self.ids[pos:]])
        self.mask = np.concatenate([*mask, self.mask[pos:]])

    def samples(self) -> list[Sample]:
        ids, labels, cut = self.ids.tolist(), self.labels().tolist(), set(self.cut)
        out, pos = [], 0
        for owner, n in zip(self.owners, self.lengths.tolist(), strict=True):
            out.append(Sample(ids[pos : pos + n], labels[pos : pos + n], owner in cut))
            pos += n
        return out


# ---------------------------------------------------------------------------------------------------- encoders
def sentencepiece_encoder(tokenizer: Any, official_encode: bool) -> Encoder:
    """Batch SentencePiece encoding (int32 arrays straight from the library where it offers them, sentencepiece
    >= 0.2.3); ``official_encode`` also maps pieces spelled like a special token (``sop``) to the special id, as the
    official ``encode``/``__call__`` do (``build_single_message`` does not)."""
    sp = tokenizer.sp_model
    remap: dict[int, int] = {}
    if official_encode:
        for name, special in tokenizer.special_tokens.items():
            pid = sp.PieceToId(name)
            if pid != sp.unk_id() and sp.IdToPiece(pid) == name:
                remap[pid] = special
    try:
        sp.encode(["a"], out_type="numpy")
        out_type: Any = "numpy"
    except (ValueError, TypeError):  # an older sentencepiece: lists of ints
        out_type = int
    table = None
    if remap and out_type == "numpy":
        table = np.arange(max(sp.GetPieceSize(), *remap.values()) + 1, dtype=np.int32)
        table[list(remap)] = list(remap.values())

    def encode(texts: list[str], threads: int) -> list[Sequence[int]]:
        out = sp.encode(texts, out_type=out_type, num_threads=threads)
        if table is not None:
            out = [table[ids] for ids in out]
        elif remap:
            out = [[remap.get(i, i) for i in ids] if any(i in remap for i in ids) else ids for ids in out]
        return out

    return encode


def raise_unsupported(src: str, family: Family, what: str) -> None:
    raise RecordError(src, f"{family.title} has no {what}; use a ChatGLM3 or GLM-4 model for this data")
