"""``glmtune preprocess``: render data files to ids and labels, then report (skips, notes, samples, statistics)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from glmtune.data.record import Report


def run_preprocess(
    model: Path,
    output: Path,
    data: list[Path] | None,
    fmt: str | None,
    columns: str | None,
    mode: str,
    eval_: bool,
    family: str | None,
    split: str | None,
    skip_invalid: bool,
    show: int,
    stats: bool,
    num_proc: int | None,
    cache: bool,
    out: TextIO | None = None,
    **settings: Any,
) -> Report:
    """The whole command; ``settings`` are the mode's length/column options (None = the mode's default)."""
    from glmtune.data.preprocess import preprocess

    err = out or sys.stderr
    done = preprocess(
        model,
        data or [],
        output,
        family=family,
        fmt=fmt,
        columns=columns,
        mode=mode,
        variant="eval" if eval_ else "train",
        settings=settings,
        split=split,
        skip_invalid=skip_invalid,
        num_proc=num_proc,
        use_cache=cache,
        light=not show,  # only the samples shown are decoded
    )
    report, table, used = done.report, done.table, done.settings
    for issue in report.invalid:
        print(f"skipped: {issue}", file=err)
    for note in report.notes:
        print(f"note: {note}", file=err)
    if report.invalid:
        print(f"skipped {report.invalid_records} invalid record(s)", file=err)  # each problem is listed above
    limit = used.limit()
    cut = f", {report.truncated} truncated" + (f" to {limit} tokens" if limit else "") if report.truncated else ""
    print(f"wrote {done.written} samples from {report.records} records to {output}{cut}", file=err)
    rows = table.drop_columns(["length"]) if "length" in table.column_names else table
    if show:
        from glmtune.data.show import show_samples

        show_samples(rows.slice(0, min(show, table.num_rows)).to_pylist(), done.tokenizer, show)
    if stats:
        from glmtune.data.stats import format_stats, length_stats, real_lengths

        lengths = (
            real_lengths(rows.to_pylist(), done.tokenizer.pad_token_id)
            if done.mode.official
            else table.column("length").to_pylist()
        )
        print(format_stats(length_stats(lengths, used.row_length(), report.truncated)))
    return report
