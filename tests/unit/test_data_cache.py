"""Caching: preprocessing runs once per (data, tokenizer, settings) fingerprint and is reused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from glmtune.data import Report, prepare_dataset
from glmtune.data.cache import fingerprint
from glmtune.families import get_family
from glmtune.tokenization import load_tokenizer
from tests.conftest import fixtures_dir

ROWS = [
    {"conversations": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
    for i in range(50)
]


@pytest.fixture(scope="module")
def tok() -> Any:
    return load_tokenizer(fixtures_dir("prep", "tokenizers", "chatglm3"), get_family("chatglm3"))


def _entries(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "prep").iterdir() if not p.name.startswith("."))


def test_second_run_loads_the_cached_dataset(tmp_path: Path, tok: Any) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n" + "{broken\n")
    cache = tmp_path / "cache"
    first_report, second_report = Report(), Report()
    first = prepare_dataset(data, tok, "chatglm3", cache_dir=cache, skip_invalid=True, report=first_report)
    second = prepare_dataset(data, tok, "chatglm3", cache_dir=cache, skip_invalid=True, report=second_report)
    assert len(_entries(cache)) == 1
    assert all(str(cache) in f["filename"] for f in second.cache_files)
    assert first.to_list() == second.to_list() and len(second) == 50
    assert [str(i) for i in second_report.invalid] == [str(i) for i in first_report.invalid] != []
    prepare_dataset(data, tok, "chatglm3", cache_dir=cache, skip_invalid=True, max_length=8)
    assert len(_entries(cache)) == 2


def test_fingerprint_follows_data_tokenizer_and_settings(tmp_path: Path, tok: Any) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(ROWS[0]) + "\n")
    base = fingerprint([data], tok, {"mode": "default"})
    assert fingerprint([data], tok, {"mode": "default"}) == base
    assert fingerprint([data], tok, {"mode": "default", "max_length": 5}) != base
    tok2 = load_tokenizer(fixtures_dir("prep", "tokenizers", "chatglm2"), get_family("chatglm2"))
    assert fingerprint([data], tok2, {"mode": "default"}) != base
    data.write_text(json.dumps(ROWS[1]) + "\n")
    assert fingerprint([data], tok, {"mode": "default"}) != base


def test_env_var_sets_the_cache_dir(tmp_path: Path, tok: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(ROWS[0]) + "\n")
    monkeypatch.setenv("GLMTUNE_CACHE", str(tmp_path / "envcache"))
    prepare_dataset(data, tok, "chatglm3")
    assert len(_entries(tmp_path / "envcache")) == 1
