"""``glmtune preprocess``: JSON lines in input order, --show/--stats, and bad input as one line per problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from glmtune.cli import main
from tests.conftest import fixtures_dir

TOK = fixtures_dir("prep", "tokenizers", "chatglm3")
GOOD = [
    {"conversations": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]},
    {"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a " * 40}]},
]


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["glmtune", "preprocess", *args])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_writes_jsonl_in_input_order_with_show_and_stats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GLMTUNE_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in GOOD) + "\n")
    out = tmp_path / "out.jsonl"
    rc = _run(
        monkeypatch,
        "--model",
        str(TOK),
        "--data",
        str(data),
        "--output",
        str(out),
        "--show",
        "1",
        "--stats",
        "--max-length",
        "30",
    )
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and set(rows[0]) == {"input_ids", "labels"}
    assert len(rows[0]["input_ids"]) < len(rows[1]["input_ids"]) == 30
    captured = capsys.readouterr()
    assert "sample 1:" in captured.out and "useful-token ratio at 30" in captured.out
    assert "wrote 2 samples from 2 records" in captured.err and "1 truncated to 30 tokens" in captured.err


def test_official_mode_output_is_the_official_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLMTUNE_CACHE", str(tmp_path / "cache"))
    doc = json.loads((fixtures_dir("prep") / "chatglm3-multiturn.json").read_text())
    cases = [c for c in doc["cases"] if c["settings"]["max_seq_length"] == 48 and "error" not in c["expected"]]
    data = tmp_path / "d.json"
    data.write_text(json.dumps([c["record"] for c in cases], ensure_ascii=False))
    out = tmp_path / "out.jsonl"
    rc = _run(
        monkeypatch,
        "--model",
        str(TOK),
        "--data",
        str(data),
        "--output",
        str(out),
        "--mode",
        "chatglm3-multiturn",
        "--max-seq-length",
        "48",
    )
    assert rc == 0
    from tests.fidelity.test_prep import expand

    assert [json.loads(x) for x in out.read_text().splitlines()] == [expand(c["expected"]) for c in cases]


def test_bad_input_lists_every_problem_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_bytes(
        json.dumps(GOOD[0]).encode()
        + b"\n"
        + b'{"conversations": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}\n'
        + b'{"a": 1} {"b": 2}\n'
        + b'{"conversations": []}\n'
        + b'{"conversations": "\xff"}\n'
    )
    out = tmp_path / "out.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "glmtune.cli",
        "preprocess",
        "--model",
        str(TOK),
        "--data",
        str(data),
        "--output",
        str(out),
    ]
    env = {"GLMTUNE_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 2 and not out.exists()
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "error: 4 invalid records (fix them, or pass --skip-invalid to skip them):"
    assert lines[1:] == [
        f"{data}:2: conversations[0].content: expected a string, got a number",
        f"{data}:3: more than one JSON value on this line (the second starts at column 10); one object per line",
        f"{data}:4: conversations: the conversation is empty",
        f"{data}:5: not valid UTF-8 text (byte 0xff at column 20)",
    ]
    proc = subprocess.run(
        [*cmd, "--skip-invalid"], capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2]
    )
    assert proc.returncode == 0 and len(out.read_text().splitlines()) == 1
    assert "skipped 4 invalid record(s)" in proc.stderr and proc.stderr.count("skipped: ") == 4


def test_llama_factory_dataset_info_names_columns_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GLMTUNE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "chat.json").write_text(
        json.dumps(
            [
                {"dialog": [{"speaker": "me", "text": "q"}, {"speaker": "bot", "text": "a"}]},
            ]
        )
    )
    (tmp_path / "dataset_info.json").write_text(
        json.dumps(
            {
                "mine": {
                    "file_name": "chat.json",
                    "formatting": "sharegpt",
                    "columns": {"messages": "dialog"},
                    "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"},
                }
            }
        )
    )
    out = tmp_path / "out.jsonl"
    rc = _run(
        monkeypatch, "--model", str(TOK), "--columns", f"{tmp_path / 'dataset_info.json'}:mine", "--output", str(out)
    )
    assert rc == 0
    tok_ids = json.loads(out.read_text())["input_ids"]
    assert tok_ids[2] == 4006 and 4007 in tok_ids  # <|user|> ... <|assistant|>
    assert "wrote 1 samples" in capsys.readouterr().err
