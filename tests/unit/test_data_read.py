"""Readers: every file shape becomes raw records with their FILE:LINE (or row) origin; bad lines are reported."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glmtune.data.read import read_path, read_paths
from glmtune.errors import GlmtuneError

REC = {"prompt": "p", "response": "r"}


def _lines(recs: list) -> list:
    return [(r.origin.line, r.data) for r in recs]


def test_json_array_keeps_start_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n  {"prompt": "a",\n   "response": "b"},\n  {"prompt": "c", "response": "d"}\n]\n')
    recs, issues = read_path(path)
    assert issues == []
    assert _lines(recs) == [(2, {"prompt": "a", "response": "b"}), (4, {"prompt": "c", "response": "d"})]
    assert str(recs[1].origin) == f"{path}:4"


def test_json_lines_in_a_json_file_and_jsonl(tmp_path: Path) -> None:
    for name in ("d.json", "d.jsonl"):
        path = tmp_path / name
        path.write_text(json.dumps(REC) + "\n\n" + json.dumps({**REC, "prompt": "q"}) + "\n")
        recs, issues = read_path(path)
        assert issues == [] and [r.origin.line for r in recs] == [1, 3]


def test_single_pretty_object(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"conversations": [{"role": "user", "content": "x"}]}, indent=2))
    recs, issues = read_path(path)
    assert issues == [] and len(recs) == 1 and recs[0].origin.line == 1


def test_bad_lines_are_all_reported_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"prompt": "a", "response": "b"}\n'
        b'{"prompt": "a"} {"prompt": "b"}\n'
        b'{"prompt": "a", \n'
        b'{"prompt": "\xff"}\n'
        b'{"prompt": "ok", "response": "fine"}\n'
    )
    recs, issues = read_path(path)
    assert [r.origin.line for r in recs] == [1, 5]
    text = [str(i) for i in issues]
    assert text[0].startswith(f"{path}:2: more than one JSON value on this line")
    assert text[1].startswith(f"{path}:3: invalid JSON")
    assert text[2].startswith(f"{path}:4: not valid UTF-8 text (byte 0xff")


def test_broken_json_array_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n {"prompt": "a", "response": "b"},\n {"prompt": "c" "response": "d"}\n]')
    recs, issues = read_path(path)
    assert len(recs) == 1 and str(issues[0]).startswith(f"{path}:3: invalid JSON")


def test_csv_rows_short_rows_and_multiline_cells(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('prompt,response\n"a\nb",c\nshort\nx,y\n', encoding="utf-8")
    recs, issues = read_path(path)
    assert _lines(recs) == [(2, {"prompt": "a\nb", "response": "c"}), (5, {"prompt": "x", "response": "y"})]
    assert [str(i) for i in issues] == [f"{path}:4: CSV row is short: 1 field, the header has 2"]


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("content\tsummary\nk\tv\n")
    recs, _ = read_path(path)
    assert recs[0].data == {"content": "k", "summary": "v"}


def test_parquet_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"], "response": ["c", "d"]}), path)
    recs, _ = read_path(path)
    assert _lines(recs) == [(1, {"prompt": "a", "response": "c"}), (2, {"prompt": "b", "response": "d"})]


def test_saved_datasets_directory_and_splits(tmp_path: Path) -> None:
    ds = datasets.Dataset.from_list([REC, {"prompt": "x", "response": "y"}])
    ds.save_to_disk(str(tmp_path / "one"))
    recs, _ = read_path(tmp_path / "one")
    assert [r.data for r in recs] == [REC, {"prompt": "x", "response": "y"}]
    datasets.DatasetDict({"train": ds, "validation": ds.select([1])}).save_to_disk(str(tmp_path / "dict"))
    assert len(read_path(tmp_path / "dict")[0]) == 2
    dev, _ = read_path(tmp_path / "dict", split="dev")
    assert [r.data["prompt"] for r in dev] == ["x"] and "[validation]" in dev[0].origin.path


def test_train_dev_test_directory(tmp_path: Path) -> None:
    for name, prompt in (("train.json", "t"), ("dev.json", "d"), ("test.jsonl", "s")):
        (tmp_path / name).write_text(json.dumps({"prompt": prompt, "response": "r"}) + "\n")
    assert [r.data["prompt"] for r in read_paths([tmp_path])[0]] == ["t"]
    assert [r.data["prompt"] for r in read_paths([tmp_path], split="dev")[0]] == ["d"]
    assert [r.data["prompt"] for r in read_paths([tmp_path], split="test")[0]] == ["s"]


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(GlmtuneError, match="no such file"):
        read_path(tmp_path / "nope.json")
    (tmp_path / "d.xml").write_text("<a/>")
    with pytest.raises(GlmtuneError, match="unknown data file type"):
        read_path(tmp_path / "d.xml")


def test_json_lines_values_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 123456789012345678901234567890, "f": 0.1}\n{"a": NaN}\n{"s": "\\ud83d\\ude00"}\n')
    recs, issues = read_path(path)
    assert issues == []
    assert recs[0].data == {"a": 123456789012345678901234567890, "f": 0.1}
    assert recs[1].data["a"] != recs[1].data["a"] and recs[2].data == {"s": "😀"}


def test_lazy_json_lines_parse_as_json_does(tmp_path: Path) -> None:
    """The lazy path (orjson first) gives json's values and json's messages, also where orjson would differ."""
    from glmtune.data.read import materialize

    lines = [
        b'{"a": 123456789012345678901234567890, "b": -9223372036854775808, "f": 0.1, "e": 1E5}',
        b'{"a": NaN, "i": Infinity}',
        b'{"s": "\\ud83d\\ude00", "lone": "\\ud800", "k": 1, "k": 2}',
        b'{"p": "\xff"}',
        b'{"p": 1} {"p": 2}',
    ]
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    pending, issues = read_paths([path], lazy=True)
    got = [materialize(r) for r in pending]
    assert issues == [] and len(got) == len(lines)
    for line, parsed in zip(lines[:3], got[:3], strict=True):
        want = json.loads(line.decode("utf-8"))
        assert repr(parsed.data) == repr(want) and list(parsed.data) == list(want)
    assert "not valid UTF-8 text (byte 0xff" in str(got[3]) and "more than one JSON value" in str(got[4])
