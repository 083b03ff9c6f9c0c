"""The path of a sample: files → raw records → formats → validate → render → (cache) → ``datasets.Dataset``.

Every bad record is collected (never only the first): without ``skip_invalid`` a :class:`DataErrors` listing all
of them is raised before anything is written; with it they are skipped and listed in the :class:`Report`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glmtune.data import parallel
from glmtune.data.formats import FormatSpec, detect, get_spec
from glmtune.data.read import materialize, read_paths
from glmtune.data.record import DataErrors, DataIssue, Origin, RawRecord, Record, Report
from glmtune.data.render import renderer_for
from glmtune.data.render.modes import DEFAULT_MODE, all_modes, get_mode
from glmtune.data.validate import checked
from glmtune.errors import GlmtuneError
from glmtune.families import Family, get_family

MODES = tuple(all_modes())


# ---------------------------------------------------------------------------------------------------- loading
def load_raw(
    paths: str | Path | Sequence[str | Path],
    split: str | None = None,
    skip_invalid: bool = False,
    report: Report | None = None,
) -> list[RawRecord]:
    """Records exactly as read (for the official modes), with every unreadable line reported."""
    raws, issues = read_paths(_as_list(paths), split)
    _settle(issues, skip_invalid, report)
    return raws


def load_records(
    paths: str | Path | Sequence[str | Path],
    fmt: str | FormatSpec | None = None,
    columns: dict[str, Any] | None = None,
    skip_invalid: bool = False,
    split: str | None = None,
    report: Report | None = None,
) -> list[Record]:
    """Normalised, validated records of data files (format detected per file unless ``fmt`` is given)."""
    raws, issues = read_paths(_as_list(paths), split)
    records, more = normalize_records(raws, fmt, columns)
    _settle(issues + more, skip_invalid, report)
    return records


def normalize_records(
    raws: Sequence[RawRecord], fmt: str | FormatSpec | None = None, columns: dict[str, Any] | None = None
) -> tuple[list[Record], list[DataIssue]]:
    """Raw records as validated :class:`Record` s, and the issues of those that are not valid."""
    given = get_spec(fmt, columns)
    by_file: dict[str, list[RawRecord]] = {}
    for raw in raws:
        by_file.setdefault(raw.origin.path, []).append(raw)
    specs = {path: given or detect(rs, path) for path, rs in by_file.items()}
    records: list[Record] = []
    issues: list[DataIssue] = []
    for raw in raws:
        got = checked(raw, specs[raw.origin.path])
        if isinstance(got, Record):
            records.append(got)
        else:
            issues += got
    return records, issues


def _as_list(paths: str | Path | Sequence[str | Path]) -> list[str | Path]:
    return [paths] if isinstance(paths, (str, Path)) else list(paths)


def _settle(issues: list[DataIssue], skip_invalid: bool, report: Report | None) -> None:
    if not issues:
        return
    if not skip_invalid:
        raise DataErrors(issues)
    if report is not None:
        report.invalid += issues


# ---------------------------------------------------------------------------------------------------- rendering
def _as_raw(items: Sequence[Any]) -> list[RawRecord]:
    out = []
    for i, r in enumerate(items, 1):
        if isinstance(r, RawRecord):
            out.append(r)
        elif isinstance(r, Record):
            out.append(RawRecord(r.raw, r.origin))
        else:
            out.append(RawRecord(r, Origin("<record>", i)))
    return out


def _specs(raws: Sequence[RawRecord], spec: FormatSpec | None) -> dict[str, FormatSpec]:
    """The format of each file (``spec`` if given, else detected from its first parsable records)."""
    by_file: dict[str, list[RawRecord]] = {}
    for raw in raws:
        sample = by_file.setdefault(raw.origin.path, [])
        if len(sample) < 200:
            parsed = materialize(raw)
            if isinstance(parsed, RawRecord):
                sample.append(parsed)
    return {path: spec or detect(rs, path) for path, rs in by_file.items()}


def _materialized(raws: list[RawRecord]) -> tuple[list[RawRecord], list[DataIssue]]:
    out: list[RawRecord] = []
    issues: list[DataIssue] = []
    for raw in raws:
        parsed = materialize(raw)
        (issues if isinstance(parsed, DataIssue) else out).append(parsed)  # type: ignore[arg-type]
    return out, issues


def _in_order(issues: list[DataIssue]) -> list[DataIssue]:
    files: dict[str, int] = {}
    for i in issues:
        files.setdefault(i.origin.path, len(files))
    return sorted(issues, key=lambda i: (files[i.origin.path], i.origin.line or 0))


def render_records(
    records: Sequence[Any],
    tokenizer: Any,
    family: Family | str,
    mode: str = DEFAULT_MODE,
    *,
    variant: str = "train",
    fmt: str | FormatSpec | None = None,
    columns: dict[str, Any] | None = None,
    num_proc: int | None = None,
    skip_invalid: bool = False,
    report: Report | None = None,
    **settings: Any,
) -> list[dict[str, list[int]]]:
    """Rendered samples in input order: ``{"input_ids", "labels"}`` (official modes: their official keys).

    ``mode="default"`` takes :class:`Record` s, or raw records/dicts (normalised and validated here, format
    detected per file unless ``fmt``), and ``max_length``; an official mode takes raw records and its own settings
    (``max_seq_length``, ``max_source_length``...).
    """
    cols = render_columns(
        records,
        tokenizer,
        family,
        mode,
        variant=variant,
        fmt=fmt,
        columns=columns,
        num_proc=num_proc,
        skip_invalid=skip_invalid,
        report=report,
        **settings,
    )
    return cols.rows()


def render_columns(
    records: Sequence[Any],
    tokenizer: Any,
    family: Family | str,
    mode: str = DEFAULT_MODE,
    *,
    variant: str = "train",
    fmt: str | FormatSpec | None = None,
    columns: dict[str, Any] | None = None,
    num_proc: int | None = None,
    skip_invalid: bool = False,
    report: Report | None = None,
    **settings: Any,
) -> parallel.Columns:
    """Like :func:`render_records`, as flat columns (what datasets and the cache store)."""
    family = get_family(family) if isinstance(family, str) else family
    local = Report()
    m = get_mode(mode)
    values = m.build(settings)
    if not m.official:
        if variant != "train":
            raise GlmtuneError("the default mode has no eval variant: render the eval split the same way")
        renderer = renderer_for(tokenizer, family)
        renderer.mask_history = values.mask_history  # type: ignore[attr-defined]
        renderer.reasoning = values.reasoning  # type: ignore[attr-defined]
        max_length = values.max_length  # type: ignore[attr-defined]
        procs = _procs(num_proc, len(records))
        if all(isinstance(r, Record) for r in records):
            cols, issues = parallel.render_default(renderer, records, max_length, procs)
        else:
            raws = _as_raw(records)
            specs = _specs(raws, get_spec(fmt, columns))
            cols, issues = parallel.render_default(renderer, raws, max_length, procs, specs)
    else:
        if m.family != family.name:
            raise GlmtuneError(
                f"mode {mode} reproduces {m.title} and needs a {get_family(m.family or '').title} "
                f"tokenizer, not {family.title}"
            )
        raws, unreadable = _materialized(_as_raw(records))
        cols, issues, notes = parallel.render_official(m, raws, tokenizer, variant, values, skip_invalid)
        issues = unreadable + issues
        local.notes += notes
    local.records = len(records)
    local.samples = len(cols)
    local.truncated = cols.truncated_records()
    if issues:
        issues = _in_order(issues)
        if not skip_invalid:
            raise DataErrors(issues)
        local.invalid += issues
    if report is not None:
        report.merge(local)
    return cols


def _procs(num_proc: int | None, n: int) -> int:
    if num_proc is not None:
        return max(1, num_proc)
    if n < 4000:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))


# ---------------------------------------------------------------------------------------------------- datasets
def prepare_dataset(
    paths: str | Path | Sequence[str | Path],
    tokenizer: Any,
    family: Family | str | None = None,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    **kwargs: Any,
) -> Any:
    """A ``datasets.Dataset`` of rendered samples (plus a ``length`` column for ``group_by_length``), computed once
    per (data, tokenizer, settings) fingerprint and then memory-mapped from the cache (see :func:`prepare_table`
    for the arguments)."""
    from glmtune.data import cache
    from glmtune.data.parallel import table_dataset

    table, key, cached = prepare_table(paths, tokenizer, family, cache_dir=cache_dir, use_cache=use_cache, **kwargs)
    if cached:
        hit = cache.load(key, cache_dir)
        if hit is not None:
            return hit[0]
    return table_dataset(table, key)


def prepare_table(
    paths: str | Path | Sequence[str | Path],
    tokenizer: Any,
    family: Family | str | None = None,
    *,
    mode: str = DEFAULT_MODE,
    fmt: str | FormatSpec | None = None,
    columns: dict[str, Any] | None = None,
    split: str | None = None,
    variant: str = "train",
    skip_invalid: bool = False,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    num_proc: int | None = None,
    report: Report | None = None,
    **settings: Any,
) -> tuple[Any, str, bool]:
    """(``pyarrow.Table`` of the rendered samples and ``length``, its fingerprint, whether it is in the cache):
    loaded from the cache when there, else rendered and stored. Needs pyarrow only, not ``datasets``."""
    from glmtune.data import cache

    family = (
        get_family(family or getattr(tokenizer, "glmtune_family", "")) if not isinstance(family, Family) else family
    )
    path_list = _as_list(paths)
    for path in path_list:
        if not Path(path).exists():
            raise GlmtuneError(f"{path}: no such file or directory")
    spec = get_spec(fmt, columns)
    key_settings = {
        "mode": mode,
        "variant": variant,
        "split": split,
        "skip_invalid": skip_invalid,
        "family": family.name,
        "format": [spec.name, spec.shape, spec.columns, spec.tags] if spec else None,
        "settings": settings,
    }
    key = cache.fingerprint(path_list, tokenizer, key_settings)
    if use_cache:
        hit = cache.load_table(key, cache_dir)
        if hit is not None:
            table, meta = hit
            if report is not None:
                report.merge(Report.from_json(meta["report"]))
            return table, key, True
    local = Report()
    raws, read_issues = read_paths(path_list, split, lazy=not get_mode(mode).official)
    try:
        cols = render_columns(
            raws,
            tokenizer,
            family,
            mode,
            variant=variant,
            fmt=spec,
            num_proc=num_proc,
            skip_invalid=skip_invalid,
            report=local,
            **settings,
        )
    except DataErrors as e:
        raise DataErrors(_in_order(read_issues + e.issues)) from None
    if read_issues:
        if not skip_invalid:
            raise DataErrors(read_issues)
        local.invalid = _in_order(read_issues + local.invalid)
    table = cols.to_table()
    if use_cache:
        cache.store(key, table, {"report": local.to_json(), "fingerprint": key}, cache_dir)
    if report is not None:
        report.merge(local)
    return table, key, use_cache
