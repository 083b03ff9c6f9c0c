"""``glmtune preprocess``: data files → one JSON line ``{"input_ids", "labels"}`` per sample, in input order.

Nothing is written when a record is invalid (all of them are listed, exit 2) unless ``skip_invalid``; the output
goes to a temporary sibling and is renamed into place. The command (``glmtune/commands/preprocess.py``) prints
the report, the samples and the statistics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from glmtune.data.formats import FormatSpec, spec_from_dataset_info
from glmtune.data.pipeline import DEFAULT_MODE, prepare_table
from glmtune.data.record import Report
from glmtune.data.render.modes import Mode, ModeSettings, get_mode
from glmtune.errors import GlmtuneError
from glmtune.families import Family, detect_family, get_family, read_config


def model_tokenizer(model: Path, family: str | None, light: bool = False) -> tuple[Any, Family]:
    """The tokenizer of a checkpoint (or tokenizer) directory and its family (detected unless named); ``light``:
    only what the default-mode renderers use (:func:`glmtune.tokenization.load_encoder`)."""
    from glmtune.tokenization import load_encoder, load_tokenizer

    fam = get_family(family) if family else detect_family(read_config(model), model)
    return (load_encoder if light else load_tokenizer)(model, fam), fam


def parse_columns(
    columns: str | dict[str, Any] | None, name: str = "--columns"
) -> tuple[dict[str, Any] | None, FormatSpec | None, Path | None]:
    """``--columns`` / ``data.columns``: a JSON object or dict (our keys, or a LLaMA-Factory ``dataset_info`` entry)
    → (columns, None, None), or ``dataset_info.json:NAME`` → (None, that entry's spec, its data file)."""
    if not columns:
        return None, None, None
    if isinstance(columns, dict):
        return dict(columns), None, None
    text = str(columns).strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise GlmtuneError(f"{name}: invalid JSON: {e.msg}") from None
        if not isinstance(value, dict):
            raise GlmtuneError(f"{name}: expected a JSON object")
        return value, None, None
    path, _, entry = text.rpartition(":")
    if not path or not entry:
        raise GlmtuneError(f"{name}: expected a JSON object or dataset_info.json:NAME")
    spec, data_file = spec_from_dataset_info(path, entry)
    return None, spec, data_file


@dataclass(frozen=True)
class Source:
    """How a run's records are read: the format (a name, a LLaMA-Factory entry's spec, or None = detect), the
    column mapping, and the data file a ``dataset_info`` entry names. ``preprocess --format/--columns`` and a
    training config's ``data.format``/``data.columns``/``data.dataset_info`` mean the same through it."""

    fmt: str | FormatSpec | None
    columns: dict[str, Any] | None
    data_file: Path | None = None

    def render_args(self, mode: Mode) -> dict[str, Any]:
        """``fmt``/``columns`` for ``prepare_dataset``: the official modes read records as stored (a ptuning mode's
        columns have become its settings, see :meth:`Mode.from_options` / :meth:`Mode.from_config`)."""
        if not mode.official:
            return {"fmt": self.fmt, "columns": self.columns}
        return {"fmt": None, "columns": None}


def data_source(
    fmt: str | None,
    columns: str | dict[str, Any] | None,
    dataset_info: str | None = None,
    names: tuple[str, str] = ("--columns", "--columns"),
) -> Source:
    """The :class:`Source` of ``fmt`` + ``columns`` (a mapping, or ``dataset_info.json:NAME``) or ``dataset_info``."""
    if columns and dataset_info:
        raise GlmtuneError(f"{names[0]} and {names[1]}: give one of them (a dataset_info entry names the columns)")
    column_map, info_spec, data_file = parse_columns(dataset_info or columns, names[1] if dataset_info else names[0])
    if dataset_info and info_spec is None:
        raise GlmtuneError(f"{names[1]}: expected dataset_info.json:NAME")
    return Source(info_spec or fmt, column_map, data_file)


def write_jsonl(path: Path, table: Any) -> int:
    """Rows of a ``pyarrow.Table`` (without ``length``) as JSON lines, atomically. Integer list columns go from
    Arrow's buffers to orjson as numpy views (no Python list per token); other columns row by row."""
    keys = [k for k in table.column_names if k != "length"]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with open(tmp, "wb", buffering=1 << 20) as f:
            columns = _int_list_columns(table, keys)
            if columns is not None:
                n = _write_int_lists(f, keys, columns)
            else:
                for batch in table.select(keys).to_batches(max_chunksize=1000):
                    for row in batch.to_pylist():
                        f.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
                        n += 1
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def _int_list_columns(table: Any, keys: list[str]) -> list[list[tuple[Any, Any]]] | None:
    """Per key, the (values, offsets) numpy views of each Arrow chunk, when every key is an integer list column
    without nulls and all have the same chunks; else None."""
    import pyarrow as pa

    table = table.select(keys).combine_chunks() if len({table.column(k).num_chunks for k in keys}) > 1 else table
    out: list[list[tuple[Any, Any]]] = []
    for key in keys:
        column = table.column(key)
        if not pa.types.is_list(column.type) or not pa.types.is_integer(column.type.value_type):
            return None
        chunks = []
        for chunk in column.chunks:
            if chunk.null_count or chunk.values.null_count:
                return None
            chunks.append((_numpy(chunk.values), _numpy(chunk.offsets)))
        out.append(chunks)
    sizes = [[len(o) for _, o in chunks] for chunks in out]
    return out if all(s == sizes[0] for s in sizes) else None


def _numpy(array: Any) -> Any:
    """A numpy view of an Arrow integer array without nulls (``to_numpy`` would import pandas to check it)."""
    import numpy as np
    import pyarrow as pa

    kind = "i" if pa.types.is_signed_integer(array.type) else "u"
    data = np.frombuffer(array.buffers()[1], dtype=np.dtype(f"{kind}{array.type.bit_width // 8}"))
    return data[array.offset : array.offset + len(array)]


def _write_int_lists(f: Any, keys: list[str], columns: list[list[tuple[Any, Any]]]) -> int:
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    dumps = orjson.dumps
    n = 0
    for parts in zip(*columns, strict=True):
        bounds = [offsets.tolist() for _, offsets in parts]
        values = [v for v, _ in parts]
        for i in range(len(bounds[0]) - 1):
            row = {k: v[b[i] : b[i + 1]] for k, v, b in zip(keys, values, bounds, strict=True)}
            f.write(dumps(row, option=option))
        n += len(bounds[0]) - 1
    return n


@dataclass
class Preprocessed:
    """What :func:`preprocess` did: the rendered samples (a ``pyarrow.Table`` with ``length``), the rows written
    and the report of the records."""

    table: Any
    written: int
    report: Report
    tokenizer: Any
    mode: Mode
    settings: ModeSettings


def preprocess(
    model: Path,
    data: Sequence[Path],
    output: Path,
    *,
    family: str | None = None,
    fmt: str | None = None,
    columns: str | None = None,
    mode: str = DEFAULT_MODE,
    variant: str = "train",
    settings: dict[str, Any] | None = None,
    split: str | None = None,
    skip_invalid: bool = False,
    num_proc: int | None = None,
    use_cache: bool = True,
    light: bool = False,
) -> Preprocessed:
    """Render ``data`` for ``model``'s tokenizer and write it to ``output`` (JSON lines, atomically); prints nothing.
    ``light``: the default mode renders with the family's light encoder (then ``tokenizer`` cannot decode);
    ``settings``: the mode's options by setting name (None: its default), checked as ``preprocess`` flags."""
    m = get_mode(mode, "--mode")
    tokenizer, fam = model_tokenizer(model, family, light=light and not m.official)
    source = data_source(fmt, columns)
    data = list(data) or ([source.data_file] if source.data_file else [])
    if not data:
        raise GlmtuneError("no data: pass --data FILE|DIR")
    values = m.from_options(settings or {}, data, split, source.fmt, source.columns)
    report = Report()
    table, _, _ = prepare_table(
        data,
        tokenizer,
        fam,
        mode=mode,
        **source.render_args(m),
        split=split,
        variant=variant,
        skip_invalid=skip_invalid,
        use_cache=use_cache,
        num_proc=num_proc,
        report=report,
        **values.kwargs(),
    )
    if table.num_rows == 0:
        where = ", ".join(str(p) for p in data)
        why = (
            "every record was invalid (run without --skip-invalid to list them)"
            if report.records
            else ("no records: the data is empty")
        )
        raise GlmtuneError(f"{where}: {why}; nothing written to {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    n = write_jsonl(output, table)
    return Preprocessed(table=table, written=n, report=report, tokenizer=tokenizer, mode=m, settings=values)
