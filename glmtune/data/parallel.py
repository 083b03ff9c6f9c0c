"""Rendering many records fast: chunks (one encode call each), shared by this process and forked workers (one
per core, taking chunks from a shared counter), and flat int32 columns (no per-token Python objects; a worker's
arrays come back through a shared memory file, not a pipe, and go zero-copy into Arrow / ``datasets``)."""

from __future__ import annotations

import gc
import multiprocessing as mp
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from glmtune.data.formats import FormatSpec
from glmtune.data.read import materialize
from glmtune.data.record import DataIssue, RawRecord, Record
from glmtune.data.render.base import Renderer
from glmtune.data.render.modes import Mode, ModeSettings
from glmtune.data.sharedmem import SharedFile
from glmtune.data.validate import checked

CHUNK = 1024


Chunk = tuple[np.ndarray, np.ndarray]  # (int32 values, offsets from 0) of one chunk of samples


class Columns:
    """Rendered samples as columns: ``flat`` int32 list columns kept in chunks (values + offsets, as the workers
    made them: no big copy) and/or plain Python lists."""

    def __init__(
        self,
        flat: dict[str, list[Chunk]] | None = None,
        lists: dict[str, list[Any]] | None = None,
        owners: Sequence[int] = (),
        truncated: Sequence[int] = (),
    ) -> None:
        self.flat = flat or {}
        self.lists = lists or {}
        self.owners = np.asarray(owners, dtype=np.int64)
        self.truncated = sorted(set(int(i) for i in truncated))

    def __len__(self) -> int:
        return len(self.owners)

    def keys(self) -> list[str]:
        return [*self.flat, *self.lists]

    def truncated_records(self) -> int:
        return len(self.truncated)

    def column(self, key: str) -> list[Any]:
        if key in self.lists:
            return self.lists[key]
        out: list[Any] = []
        for values, offsets in self.flat[key]:
            flat, bounds = values.tolist(), offsets.tolist()
            out += [flat[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
        return out

    def rows(self) -> list[dict[str, Any]]:
        cols = {k: self.column(k) for k in self.keys()}
        return [{k: cols[k][i] for k in cols} for i in range(len(self))]

    def lengths(self) -> np.ndarray:
        if "input_ids" in self.flat:
            parts = [np.diff(offsets) for _, offsets in self.flat["input_ids"]]
            return np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return np.array([len(x) for x in self.lists.get("input_ids", [])], dtype=np.int64)

    def to_table(self) -> Any:
        """A ``pyarrow.Table`` of these columns and ``length`` (for ``group_by_length``), the flat ones zero-copy."""
        import pyarrow as pa

        arrays: dict[str, Any] = {}
        for key, chunks in self.flat.items():
            lists = [pa.ListArray.from_arrays(_int32(o), _int32(v)) for v, o in chunks]
            arrays[key] = pa.chunked_array(lists, type=pa.list_(pa.int32()))
        for key, values in self.lists.items():
            arrays[key] = pa.array(values)
        arrays["length"] = _int32(self.lengths())
        return pa.table(arrays)

    def to_dataset(self, fingerprint: str | None = None) -> Any:
        """A ``datasets.Dataset`` of :meth:`to_table`. ``fingerprint`` (our cache key) spares ``datasets`` from
        hashing every token to make one."""
        return table_dataset(self.to_table(), fingerprint)


def _int32(values: np.ndarray) -> Any:
    """An Arrow int32 array over a numpy array's memory (``pa.array`` would import pandas to inspect it)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype=np.int32)
    return pa.Array.from_buffers(pa.int32(), len(values), [None, pa.py_buffer(values)])


def table_dataset(table: Any, fingerprint: str | None = None) -> Any:
    """An in-memory ``datasets.Dataset`` over a ``pyarrow.Table`` (no copy)."""
    import uuid

    import datasets
    from datasets.table import InMemoryTable

    return datasets.Dataset(InMemoryTable(table), fingerprint=fingerprint or uuid.uuid4().hex)


# ---------------------------------------------------------------------------------------------------- default mode
_STATE: dict[str, Any] = {}


class Part(NamedTuple):
    """The rendered samples of records ``start:stop``: int32 ``ids`` and ``labels`` (:class:`Slot` s of a
    worker's :class:`SharedFile` while they travel back to the parent)."""

    start: int
    owners: list[int]
    lengths: np.ndarray
    ids: Any
    labels: Any
    cut: list[int]
    issues: list[DataIssue]


def _render_span(span: tuple[int, int]) -> Part:
    """The records ``start:stop`` of the shared state, normalised and validated (raw records) and rendered."""
    renderer: Renderer = _STATE["renderer"]
    items: Sequence[Any] = _STATE["items"]
    specs: dict[str, FormatSpec] | None = _STATE["specs"]
    start, stop = span
    issues: list[DataIssue] = []
    if specs is None:
        records, index = list(items[start:stop]), list(range(start, stop))
    else:
        records, index = [], []
        for k in range(start, stop):
            raw = materialize(items[k])
            got = [raw] if isinstance(raw, DataIssue) else checked(raw, specs[raw.origin.path])
            if isinstance(got, Record):
                records.append(got)
                index.append(k)
            else:
                issues += got
    flat, more = renderer.render_flat(records, _STATE["max_length"])
    owners = [index[i] for i in flat.owners]
    cut = [index[i] for i in flat.cut]
    return Part(start, owners, flat.lengths, flat.ids, flat.labels(), cut, issues + more)


def _take_spans(shared: SharedFile | None = None) -> list[Part]:
    """Render spans until none is left, taking the next one from the counter shared by all processes (a slower
    process takes fewer); in a worker, the arrays go into its ``shared`` file."""
    counter, spans = _STATE["counter"], _STATE["spans"]
    out = []
    while True:
        with counter.get_lock():
            k = counter.value
            counter.value = k + 1
        if k >= len(spans):
            return out
        part = _render_span(spans[k])
        if shared is not None:
            part = part._replace(ids=shared.put(part.ids), labels=shared.put(part.labels))
        out.append(part)


def _worker(conn: Any, shared: SharedFile) -> None:
    try:
        conn.send(_take_spans(shared))
    except BaseException as e:  # sent to the parent, which raises it
        conn.send(e)
    finally:
        conn.close()


def _in_parallel(spans: list[tuple[int, int]], procs: int) -> list[Part]:
    """``procs - 1`` forked workers and this process share ``spans``; the parts in input order."""
    ctx = mp.get_context("fork")
    _STATE.update(counter=ctx.Value("i", 0), spans=spans)
    workers = []
    done = False
    try:
        for _ in range(procs - 1):
            shared = SharedFile()
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(send, shared), daemon=True)
            proc.start()
            send.close()
            workers.append((proc, recv, shared))
        parts = _take_spans()
        for proc, recv, shared in workers:
            try:
                got = recv.recv()
            except EOFError:
                proc.join()
                raise RuntimeError(f"a data worker process died (exit code {proc.exitcode})") from None
            if isinstance(got, BaseException):
                raise got
            parts += [p._replace(ids=shared.view(p.ids), labels=shared.view(p.labels)) for p in got]
        done = True
    finally:
        for proc, recv, shared in workers:
            if not done:  # an error here or in another worker: the rest is not needed
                proc.terminate()
            proc.join()
            recv.close()
            shared.close()
    return sorted(parts, key=lambda p: p.start)


def render_default(
    renderer: Renderer,
    items: Sequence[Any],
    max_length: int | None,
    procs: int,
    specs: dict[str, FormatSpec] | None = None,
) -> tuple[Columns, list[DataIssue]]:
    """Render records (or raw records, normalised and validated on the way when ``specs`` maps each file to its
    format) in chunks, shared by this process and ``procs - 1`` forked ones; results in input order."""
    spans = [(s, min(s + CHUNK, len(items))) for s in range(0, len(items), CHUNK)]
    parallel = (
        procs > 1
        and len(spans) > 1
        and "fork" in mp.get_all_start_methods()
        and not mp.current_process().daemon  # a daemonic process (a pool worker) may not start processes
    )
    renderer.threads = 1 if parallel else max(1, procs)
    _STATE.update(renderer=renderer, items=items, max_length=max_length, specs=specs)
    gc_was_on = gc.isenabled()
    gc.disable()  # millions of short-lived lists: the cyclic GC would rescan every live record again and again
    try:
        parts = _in_parallel(spans, min(procs, len(spans))) if parallel else [_render_span(s) for s in spans]
    finally:
        _STATE.clear()
        renderer.threads = 1
        if gc_was_on:
            gc.enable()
    id_chunks: list[Chunk] = []
    label_chunks: list[Chunk] = []
    for p in parts:
        offsets = np.zeros(len(p.lengths) + 1, dtype=np.int64)
        np.cumsum(p.lengths, out=offsets[1:])
        id_chunks.append((p.ids, offsets))
        label_chunks.append((p.labels, offsets))
    owners = [o for p in parts for o in p.owners]
    cut = [c for p in parts for c in p.cut]
    issues = [i for p in parts for i in p.issues]
    cols = Columns({"input_ids": id_chunks, "labels": label_chunks}, None, owners, cut)
    return cols, issues


# ---------------------------------------------------------------------------------------------------- official modes
def render_official(
    mode: Mode,
    raws: Sequence[RawRecord],
    tokenizer: Any,
    variant: str,
    settings: ModeSettings,
    skip_invalid: bool,
) -> tuple[Columns, list[DataIssue], list[DataIssue]]:
    """Run an official mode batch by batch (``mode.batch_size`` records, as ``datasets.map`` did)."""
    lists: dict[str, list[Any]] = {}
    owners: list[int] = []
    truncated: list[int] = []
    issues: list[DataIssue] = []
    notes: list[DataIssue] = []
    for start in range(0, len(raws), mode.batch_size):
        batch = list(raws[start : start + mode.batch_size])
        index = list(range(start, start + len(batch)))
        result = mode.run([r.data for r in batch], tokenizer, variant, settings)
        while result.errors:
            bad = sorted({i for i, _ in result.errors})
            issues += [e.issue(batch[i].origin) for i, e in result.errors]
            if not skip_invalid:
                break
            batch = [r for k, r in enumerate(batch) if k not in bad]
            index = [g for k, g in enumerate(index) if k not in bad]
            result = mode.run([r.data for r in batch], tokenizer, variant, settings) if batch else type(result)()
        if result.errors:
            continue
        notes += [DataIssue(batch[i].origin, "", text) for i, text in result.notes]
        for out, owner in zip(result.outputs, result.owners, strict=True):
            for key, value in out.items():
                lists.setdefault(key, []).append(value)
            owners.append(index[owner])
        truncated += [index[i] for i in result.truncated]
    return Columns(None, lists, owners, truncated), issues, notes
