"""Length statistics of rendered samples and how much of a batch is real tokens (padded vs packed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from glmtune.data.pack import packed_ratio

if TYPE_CHECKING:
    from glmtune.data.render.modes import Mode, ModeSettings


def real_lengths(samples: Sequence[dict[str, Any]], pad_id: int) -> np.ndarray:
    """Tokens of each sample that are not padding (outputs of the official modes are padded, right or left)."""
    out = []
    for s in samples:
        mask = s.get("attention_mask")
        if isinstance(mask, list) and mask and isinstance(mask[0], int):
            out.append(int(sum(mask)))
            continue
        ids = s["input_ids"]
        labels = s.get("labels")
        if labels is not None and len(labels) != len(ids):
            labels = None
        start, stop = 0, len(ids)
        while stop > start and ids[stop - 1] == pad_id and (labels is None or labels[stop - 1] in (-100, pad_id)):
            stop -= 1
        while start < stop and ids[start] == pad_id and (labels is None or labels[start] in (-100, pad_id)):
            start += 1
        out.append(stop - start)
    return np.array(out, dtype=np.int64)


def length_stats(lengths: Sequence[int] | np.ndarray, max_length: int, truncated: int = 0) -> dict[str, Any]:
    """Percentiles, truncated count and the useful-token ratio padded to ``max_length`` (as the official
    datasets do), padded per batch of 8 in input order, and packed into rows of ``max_length``."""
    arr = np.asarray(lengths, dtype=np.int64)
    if not len(arr):
        return {"samples": 0, "truncated": truncated}
    batch = 8
    row = max(max_length, int(arr.max()))  # untruncated samples longer than max_length get rows of their length
    padded_batches = sum(int(arr[i : i + batch].max()) * len(arr[i : i + batch]) for i in range(0, len(arr), batch))
    return {
        "samples": len(arr),
        "tokens": int(arr.sum()),
        "mean": float(arr.mean()),
        "p50": int(np.percentile(arr, 50)),
        "p90": int(np.percentile(arr, 90)),
        "p99": int(np.percentile(arr, 99)),
        "max": int(arr.max()),
        "truncated": int(truncated),
        "max_length": int(max_length),
        "row_length": row,
        "useful_ratio_padded": float(arr.sum()) / (len(arr) * row),
        "useful_ratio_batch8": float(arr.sum()) / padded_batches,
        "useful_ratio_packed": packed_ratio(arr.tolist(), row),
    }


def dataset_stats(ds: Any, mode: Mode, pad_id: int, settings: ModeSettings, truncated: int = 0) -> dict[str, Any]:
    """:func:`length_stats` of a rendered dataset, at the row length its mode's ``settings`` give (the official
    modes' rows are measured without their padding)."""
    if mode.official:
        lengths = real_lengths(ds.select_columns([k for k in ds.column_names if k != "length"]).to_list(), pad_id)
    else:
        lengths = ds["length"]
    return length_stats(lengths, settings.row_length(), truncated)


def format_stats(stats: dict[str, Any]) -> str:
    if not stats.get("samples"):
        return "no samples"
    return (
        f"samples {stats['samples']}, tokens {stats['tokens']}, truncated {stats['truncated']}\n"
        f"length: mean {stats['mean']:.1f}, p50 {stats['p50']}, p90 {stats['p90']}, p99 {stats['p99']}, "
        f"max {stats['max']}\n"
        f"useful-token ratio at {stats['row_length']}"
        + (
            f" (the longest sample, longer than {stats['max_length']})"
            if stats["row_length"] > stats["max_length"]
            else ""
        )
        + f": padded {stats['useful_ratio_padded']:.3f}, "
        f"per batch of 8 {stats['useful_ratio_batch8']:.3f}, packed {stats['useful_ratio_packed']:.3f}"
    )
