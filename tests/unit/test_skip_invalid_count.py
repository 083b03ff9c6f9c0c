"""``--skip-invalid`` counts records, not problems: a record with two bad fields is one skipped record whose two
problems are both listed (JSON lines, and a JSON list written on one line, where records share a line number)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from glmtune.commands.preprocess import run_preprocess
from glmtune.data import load_records
from glmtune.data.record import DataErrors, Report
from tests.conftest import fixtures_dir

TOK = fixtures_dir("prep", "tokenizers", "chatglm3")
GOOD = {"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
TWO_BAD = {"conversations": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a", "loss": "yes"}]}
ONE_BAD = {"conversations": []}


def _jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (GOOD, TWO_BAD, ONE_BAD, GOOD)) + "\n", encoding="utf-8")
    return path


def _minified(tmp_path: Path) -> Path:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([GOOD, TWO_BAD, ONE_BAD, TWO_BAD]), encoding="utf-8")  # one line
    return path


def _run(data: Path, out: Path, cache: bool) -> str:
    err = io.StringIO()
    run_preprocess(
        TOK, out, [data], None, None, "default", False, None, None, True, 0, False, 1, cache, out=err, max_length=None
    )
    return err.getvalue()


@pytest.mark.parametrize(("make", "records", "problems"), [(_jsonl, 2, 3), (_minified, 3, 5)])
def test_counts_records_and_lists_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make, records: int, problems: int
) -> None:
    monkeypatch.setenv("GLMTUNE_CACHE", str(tmp_path / "cache"))
    data = make(tmp_path)
    with pytest.raises(DataErrors) as info:
        load_records(data)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{records} invalid records (fix them, or pass --skip-invalid to skip them):"
    assert len(lines) == 1 + problems
    report = Report()
    load_records(data, skip_invalid=True, report=report)
    assert report.invalid_records == records and len(report.invalid) == problems
    assert Report.from_json(report.to_json()).invalid_records == records  # as the cache stores it
    for cache in (True, False, True):  # a cached rerun reports the same
        text = _run(data, tmp_path / "out.jsonl", cache)
        assert f"skipped {records} invalid record(s)" in text, text
        assert text.count("skipped: ") == problems
