"""Packing: many samples per row of ``max_length`` tokens, with per-sample position ids.

:func:`pack_groups` chooses which samples share a row (best-fit decreasing: longest first, each into the row it
fills best), :func:`pack_dataset` builds the rows (``input_ids``, ``labels`` with -100 on each sample's first
token, ``position_ids`` restarting at 0 per sample). Train on them with ``make_collator(tokenizer, pack=True)``;
the loss equals the unpacked loss (tested). ``group_by_length`` (the ``length`` column of every prepared
dataset) is the alternative when packing is not wanted.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np

IGNORE = -100


def pack_groups(lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """Indices of the samples in each row; every row holds at most ``max_length`` tokens (a longer sample gets
    a row of its own). Rows come out in order of their first (longest) sample."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row number), sorted
    for i in order:
        n = int(lengths[i])
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, row = free.pop(k)
            rows[row].append(i)
            if room - n > 0:
                bisect.insort(free, (room - n, row))
        else:
            rows.append([i])
            if max_length - n > 0:
                bisect.insort(free, (max_length - n, len(rows) - 1))
    return rows


def packed_ratio(lengths: Sequence[int], max_length: int) -> float:
    """Useful-token ratio of packed rows of ``max_length``: real tokens / (rows x max_length)."""
    if not len(lengths):
        return 0.0
    rows = pack_groups(lengths, max_length)
    return float(np.sum(lengths)) / (len(rows) * max_length)


def pack_dataset(dataset: Any, max_length: int) -> Any:
    """A ``datasets.Dataset`` of packed rows built from a prepared dataset (``input_ids``, ``labels``)."""
    import datasets

    lengths = dataset["length"] if "length" in dataset.column_names else [len(x) for x in dataset["input_ids"]]
    groups = pack_groups(list(lengths), max_length)
    ids_col, labels_col = dataset["input_ids"], dataset["labels"]
    rows: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
    for group in groups:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        for i in group:
            x, y = list(ids_col[i]), list(labels_col[i])
            ids += x
            labels += [IGNORE, *y[1:]]
            pos += range(len(x))
        rows["input_ids"].append(ids)
        rows["labels"].append(labels)
        rows["position_ids"].append(pos)
    out = datasets.Dataset.from_dict(rows)
    return out.add_column("length", [len(r) for r in rows["input_ids"]])
