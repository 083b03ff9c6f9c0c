"""Rendering many records fast: batches (one encode call per batch), processes (fork, one per core) and flat
int32 columns (no per-token Python objects between processes, zero-copy into Arrow / ``datasets``)."""

from __future__ import annotations

import multiprocessing as mp
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from glmtune.data.record import DataIssue, RawRecord, Record
from glmtune.data.render.base import Renderer
from glmtune.data.render.official import OfficialMode

CHUNK = 2048


class Columns:
    """Rendered samples as columns: ``flat`` int32 list columns (values + offsets) and/or plain Python lists."""

    def __init__(
        self,
        flat: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
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
        values, offsets = self.flat[key]
        flat = values.tolist()
        return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]

    def rows(self) -> list[dict[str, Any]]:
        cols = {k: self.column(k) for k in self.keys()}
        return [{k: cols[k][i] for k in cols} for i in range(len(self))]

    def lengths(self) -> np.ndarray:
        if "input_ids" in self.flat:
            return np.diff(self.flat["input_ids"][1])
        return np.array([len(x) for x in self.lists.get("input_ids", [])], dtype=np.int64)

    def to_dataset(self) -> Any:
        """A ``datasets.Dataset`` with these columns and ``length`` (for ``group_by_length``)."""
        import datasets
        import pyarrow as pa
        from datasets.table import InMemoryTable

        arrays: dict[str, Any] = {}
        for key, (values, offsets) in self.flat.items():
            arrays[key] = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
        for key, values in self.lists.items():
            arrays[key] = pa.array(values)
        arrays["length"] = pa.array(self.lengths().astype(np.int32))
        return datasets.Dataset(InMemoryTable(pa.table(arrays)))


# ---------------------------------------------------------------------------------------------------- default mode
_STATE: dict[str, Any] = {}


def _render_span(span: tuple[int, int]) -> tuple[int, list[int], array, array, array, list[int], list[DataIssue]]:
    renderer: Renderer = _STATE["renderer"]
    records: Sequence[Record] = _STATE["records"]
    start, stop = span
    done, issues = renderer.render(records[start:stop], _STATE["max_length"])
    owners, lengths, ids, labels, cut = [], array("q"), array("i"), array("i"), []
    for i, sample in done:
        owners.append(start + i)
        lengths.append(len(sample.input_ids))
        ids.extend(sample.input_ids)
        labels.extend(sample.labels)
        if sample.truncated:
            cut.append(start + i)
    return start, owners, lengths, ids, labels, cut, issues


def render_default(
    renderer: Renderer, records: Sequence[Record], max_length: int | None, procs: int
) -> tuple[Columns, list[DataIssue]]:
    """Render records in chunks, in ``procs`` forked processes when > 1; results in input order."""
    spans = [(s, min(s + CHUNK, len(records))) for s in range(0, len(records), CHUNK)]
    _STATE.update(renderer=renderer, records=records, max_length=max_length)
    try:
        if procs > 1 and len(spans) > 1 and "fork" in mp.get_all_start_methods():
            with mp.get_context("fork").Pool(min(procs, len(spans))) as pool:
                parts = pool.map(_render_span, spans, chunksize=1)
        else:
            parts = [_render_span(s) for s in spans]
    finally:
        _STATE.clear()
    parts.sort(key=lambda p: p[0])
    owners = [o for p in parts for o in p[1]]
    lengths = np.concatenate([np.frombuffer(p[2], dtype=np.int64) for p in parts]) if parts else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate([np.frombuffer(p[3], dtype=np.int32) for p in parts]) if parts else np.zeros(0, np.int32)
    labels = np.concatenate([np.frombuffer(p[4], dtype=np.int32) for p in parts]) if parts else np.zeros(0, np.int32)
    cut = [c for p in parts for c in p[5]]
    issues = [i for p in parts for i in p[6]]
    cols = Columns({"input_ids": (ids, offsets), "labels": (labels, offsets)}, None, owners, cut)
    return cols, issues


# ---------------------------------------------------------------------------------------------------- official modes
def render_official(
    mode: OfficialMode, raws: Sequence[RawRecord], tokenizer: Any, variant: str, settings: dict[str, Any],
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
        result = mode.run([r.data for r in batch], tokenizer, variant, **settings)
        while result.errors:
            bad = sorted({i for i, _ in result.errors})
            issues += [e.issue(batch[i].origin) for i, e in result.errors]
            if not skip_invalid:
                break
            batch = [r for k, r in enumerate(batch) if k not in bad]
            index = [g for k, g in enumerate(index) if k not in bad]
            result = mode.run([r.data for r in batch], tokenizer, variant, **settings) if batch else type(result)()
        if result.errors:
            continue
        notes += [DataIssue(batch[i].origin, "", text) for i, text in result.notes]
        for out, owner in zip(result.outputs, result.owners, strict=True):
            for key, value in out.items():
                lists.setdefault(key, []).append(value)
            owners.append(index[owner])
        truncated += [index[i] for i in result.truncated]
    return Columns(None, lists, owners, truncated), issues, notes
