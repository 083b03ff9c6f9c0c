"""Files → raw records with their origin: JSON (array, JSON lines, one object), JSONL, CSV/TSV, Parquet, a saved
``datasets`` directory, or a directory of ``train``/``dev``/``test`` files (the official finetune_demo layout).

Reading never stops at the first bad line: every broken line (invalid JSON, two objects on one line, bytes that are
not UTF-8, a short CSV row) becomes a :class:`DataIssue` and reading goes on.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path

import orjson

from glmtune.data.record import DataIssue, Origin, RawRecord
from glmtune.errors import GlmtuneError

TEXT_SUFFIXES = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}
TABLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet"}
SPLIT_NAMES = {
    "train": ("train",),
    "dev": ("dev", "validation", "valid", "val", "eval"),
    "test": ("test",),
}
_WS = re.compile(r"[ \t\r\n]*")


def read_paths(
    paths: Iterable[str | Path], split: str | None = None, lazy: bool = False
) -> tuple[list[RawRecord], list[DataIssue]]:
    """Raw records of every path in order (directories expanded), and the problems found while reading.

    ``lazy``: JSON lines are left unparsed (``RawRecord.pending``) for :func:`materialize` to parse later.
    """
    records: list[RawRecord] = []
    issues: list[DataIssue] = []
    for path in paths:
        recs, errs = read_path(Path(path), split, lazy)
        records += recs
        issues += errs
    return records, issues


def read_path(path: Path, split: str | None = None, lazy: bool = False) -> tuple[list[RawRecord], list[DataIssue]]:
    """Raw records of one file or directory."""
    if not path.exists():
        raise GlmtuneError(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_dir(path, split, lazy)
    kind = TEXT_SUFFIXES.get(path.suffix.lower()) or TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted({*TEXT_SUFFIXES, *TABLE_SUFFIXES}))
        raise GlmtuneError(f"{path}: unknown data file type {path.suffix!r} (known: {known}, or a directory)")
    if kind == "parquet":
        return _read_parquet(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise GlmtuneError(f"{path}: cannot read: {e.strerror}") from None
    if lazy and kind in ("json", "jsonl"):
        pending = _pending_lines(path, data, lines_only=kind == "jsonl")
        if pending is not None:
            return pending, []
    text, bad = _decode(path, data)
    if kind in ("csv", "tsv"):
        return _read_csv(path, text, bad, "\t" if kind == "tsv" else ",")
    return _read_json_text(path, text, bad, lines_only=kind == "jsonl", lazy=lazy)


# ---------------------------------------------------------------------------------------------------- decoding
def _decode(path: Path, data: bytes) -> tuple[str, dict[int, DataIssue]]:
    """UTF-8 text of a file (BOM removed); lines with undecodable bytes are reported and decoded with U+FFFD."""
    try:
        return data.decode("utf-8-sig"), {}
    except UnicodeDecodeError:
        pass
    bad: dict[int, DataIssue] = {}
    lines = data.split(b"\n")
    out = []
    for number, raw in enumerate(lines, 1):
        try:
            out.append(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as e:
            bad[number] = DataIssue(Origin(str(path), number), "", _utf8_message(raw, e))
            out.append(raw.decode("utf-8", errors="replace"))
    return "\n".join(out), bad


def _utf8_message(line: bytes, e: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 text (byte 0x{line[e.start]:02x} at column {e.start + 1})"


class _Lines:
    """Offset → 1-based line number."""

    def __init__(self, text: str) -> None:
        self.starts = [m.end() for m in re.finditer("\n", text)]

    def __call__(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) + 1


# ---------------------------------------------------------------------------------------------------- JSON
def _read_json_text(
    path: Path, text: str, bad: dict[int, DataIssue], lines_only: bool, lazy: bool = False
) -> tuple[list[RawRecord], list[DataIssue]]:
    start = _WS.match(text).end()  # type: ignore[union-attr]
    if start == len(text):
        return [], []
    if not lines_only and text[start] == "[":
        return _read_json_array(path, text, start, bad)
    first_end = text.find("\n", start)
    first_line = text[start : first_end if first_end >= 0 else len(text)]
    if not lines_only and not _parses(first_line):
        try:  # one (pretty-printed) object spanning several lines
            value = json.loads(text)
        except json.JSONDecodeError:
            pass
        else:
            line = _Lines(text)(start)
            if bad:
                return [], list(bad.values())
            return [RawRecord(value, Origin(str(path), line))], []
    return _read_json_lines(path, text, bad, lazy)


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


def _read_json_lines(
    path: Path, text: str, bad: dict[int, DataIssue], lazy: bool = False
) -> tuple[list[RawRecord], list[DataIssue]]:
    records: list[RawRecord] = []
    issues: list[DataIssue] = []
    name = str(path)
    for number, line in enumerate(text.split("\n"), 1):
        if number in bad:
            issues.append(bad[number])
            continue
        if not line or line.isspace():
            continue
        raw = RawRecord(line, Origin(name, number), pending=True)
        if not lazy:
            parsed = materialize(raw)
            if isinstance(parsed, DataIssue):
                issues.append(parsed)
                continue
            raw = parsed
        records.append(raw)
    return records, issues


def _pending_lines(path: Path, data: bytes, lines_only: bool) -> list[RawRecord] | None:
    """JSON lines as pending records holding their undecoded bytes (decoding and parsing happen in the workers:
    see :func:`materialize`); ``None`` when the file is not JSON lines (an array, one pretty-printed object)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    first = data.lstrip()
    if not first:
        return []
    if not lines_only:
        if first[:1] == b"[":
            return None
        end = first.find(b"\n")
        try:
            json.loads(first[: end if end >= 0 else len(first)])
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            return None
    name = str(path)
    return [
        RawRecord(line, Origin(name, number), pending=True)
        for number, line in enumerate(data.split(b"\n"), 1)
        if line and not line.isspace()
    ]


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19  # 19 digits in a row (in a string or not): maybe an integer past 64 bits


def _long_digit_run(line: bytes) -> bool:
    """Whether ``line`` has 19 digits in a row (a translate and a substring search: ten times a regex's speed)."""
    return _LONG_RUN in line.translate(_DIGITS_AS_ZERO)


def materialize(raw: RawRecord) -> RawRecord | DataIssue:
    """A pending record parsed (or the issue of its line); other records unchanged."""
    if not raw.pending:
        return raw
    line = raw.data
    if type(line) is bytes:
        # orjson first; json (whose results and messages are the reference) for what orjson refuses (invalid
        # UTF-8 or JSON, NaN, a lone surrogate) and for integers past 64 bits (orjson would make them floats)
        if not _long_digit_run(line):
            try:
                return RawRecord(orjson.loads(line), raw.origin)
            except orjson.JSONDecodeError:
                pass
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            return DataIssue(raw.origin, "", _utf8_message(line, e))
    try:
        return RawRecord(json.loads(line), raw.origin)
    except json.JSONDecodeError as e:
        return DataIssue(raw.origin, "", _json_message(e, line))


def _json_message(e: json.JSONDecodeError, line: str) -> str:
    if e.msg == "Extra data":
        return f"more than one JSON value on this line (the second starts at column {e.colno}); one object per line"
    return f"invalid JSON: {e.msg} (column {e.colno})"


def _read_json_array(
    path: Path, text: str, start: int, bad: dict[int, DataIssue]
) -> tuple[list[RawRecord], list[DataIssue]]:
    line_of = _Lines(text)
    decoder = json.JSONDecoder()
    ws = _WS.match
    records: list[RawRecord] = []
    issues: list[DataIssue] = list(bad.values())
    bad_lines = sorted(bad)
    item = 0
    idx = ws(text, start + 1).end()  # type: ignore[union-attr]
    if idx < len(text) and text[idx] == "]":
        idx += 1
    else:
        while True:
            try:
                value, end = decoder.raw_decode(text, idx)
            except json.JSONDecodeError as e:
                issues.append(DataIssue(Origin(str(path), e.lineno), "", f"invalid JSON: {e.msg} (column {e.colno})"))
                return records, issues
            first, last = line_of(idx), line_of(max(end - 1, idx))
            k = bisect.bisect_left(bad_lines, first)
            if not (k < len(bad_lines) and bad_lines[k] <= last):
                records.append(RawRecord(value, Origin(str(path), first, item)))
            item += 1
            idx = ws(text, end).end()  # type: ignore[union-attr]
            if idx < len(text) and text[idx] == ",":
                idx = ws(text, idx + 1).end()  # type: ignore[union-attr]
                continue
            if idx < len(text) and text[idx] == "]":
                idx += 1
                break
            where = Origin(str(path), line_of(idx))
            issues.append(DataIssue(where, "", "invalid JSON: expected ',' or ']' after a list item"))
            return records, issues
    idx = ws(text, idx).end()  # type: ignore[union-attr]
    if idx < len(text):
        issues.append(
            DataIssue(Origin(str(path), line_of(idx)), "", "invalid JSON: extra data after the top-level list")
        )
    return records, issues


# ---------------------------------------------------------------------------------------------------- CSV
def _read_csv(
    path: Path, text: str, bad: dict[int, DataIssue], delimiter: str
) -> tuple[list[RawRecord], list[DataIssue]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    issues: list[DataIssue] = list(bad.values())
    records: list[RawRecord] = []
    try:
        header = next(reader)
    except StopIteration:
        return [], issues
    except csv.Error as e:
        return [], [*issues, DataIssue(Origin(str(path), 1), "", f"invalid CSV: {e}")]
    header = [h.strip() for h in header]
    seen = set()
    for name in header:
        if name in seen:
            issues.append(DataIssue(Origin(str(path), 1), name, "column name appears twice in the header"))
        seen.add(name)
    prev = reader.line_num
    while True:
        first = prev + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            issues.append(DataIssue(Origin(str(path), first), "", f"invalid CSV: {e}"))
            prev = reader.line_num
            continue
        prev = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip() and len(header) > 1):
            continue
        if first in bad:
            continue
        if len(row) != len(header):
            what = "short" if len(row) < len(header) else "long"
            issues.append(
                DataIssue(
                    Origin(str(path), first),
                    "",
                    f"CSV row is {what}: {len(row)} field{'s' if len(row) != 1 else ''}, the header has {len(header)}",
                )
            )
            continue
        records.append(RawRecord(dict(zip(header, row, strict=True)), Origin(str(path), first)))
    return records, issues


# ---------------------------------------------------------------------------------------------------- tables
def _read_parquet(path: Path) -> tuple[list[RawRecord], list[DataIssue]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises many types for broken files
        raise GlmtuneError(f"{path}: cannot read Parquet: {e}") from None
    return [RawRecord(row, Origin(str(path), i)) for i, row in enumerate(table.to_pylist(), 1)], []


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def _read_saved_dataset(path: Path, split: str | None) -> tuple[list[RawRecord], list[DataIssue]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise GlmtuneError(f"{path}: cannot load the saved datasets directory: {e}") from None
    where = str(path)
    if isinstance(ds, datasets.DatasetDict):
        name = _pick_split(path, list(ds), split)
        ds = ds[name]
        where = f"{path}[{name}]"
    return [RawRecord(row, Origin(where, i)) for i, row in enumerate(ds.to_list(), 1)], []


def _pick_split(path: Path, available: list[str], split: str | None) -> str:
    wanted = split or "train"
    for name in SPLIT_NAMES.get(wanted, (wanted,)):
        if name in available:
            return name
    if split is None and len(available) == 1:
        return available[0]
    raise GlmtuneError(f"{path}: no split {wanted!r} (available: {', '.join(available)}); choose one with --split")


def _read_dir(path: Path, split: str | None, lazy: bool = False) -> tuple[list[RawRecord], list[DataIssue]]:
    if _is_saved_dataset(path):
        return _read_saved_dataset(path, split)
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in {**TEXT_SUFFIXES, **TABLE_SUFFIXES})
    by_split: dict[str, list[Path]] = {}
    for p in files:
        for canonical, names in SPLIT_NAMES.items():
            if p.stem.lower() in names:
                by_split.setdefault(canonical, []).append(p)
    if by_split:
        wanted = split or "train"
        canonical = next((c for c, names in SPLIT_NAMES.items() if wanted in names), wanted)
        if canonical not in by_split:
            raise GlmtuneError(
                f"{path}: no {wanted} file (found {', '.join(sorted(p.name for ps in by_split.values() for p in ps))})"
            )
        files = by_split[canonical]
    elif not files:
        raise GlmtuneError(f"{path}: no data files (.json, .jsonl, .csv, .tsv, .parquet) in this directory")
    return read_paths(files, lazy=lazy)
