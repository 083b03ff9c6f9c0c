"""Bad input: every malformed record gets one line ``FILE:LINE: field: what is wrong``, all in one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmtune.data import DataErrors, Report, load_records

U = {"role": "user", "content": "q"}
A = {"role": "assistant", "content": "a"}

BAD = [
    (
        {"conversations": [{"role": "user", "content": 5}, A]},
        "conversations[0].content: expected a string, got a number",
    ),
    ({"conversations": [{"role": "user"}, A]}, "conversations[0].content: missing"),
    (
        {"conversations": [{"role": "user", "content": None}, A]},
        "conversations[0].content: expected a string, got null",
    ),
    ({"conversations": [{"role": "bot", "content": "x"}, A]}, 'conversations[0].role: unknown role "bot"'),
    ({"conversations": [{"content": "x"}, A]}, "conversations[0].role: missing"),
    ({"conversations": [U, {**A, "loss": "no"}]}, "conversations[1].loss: expected true or false, got 'no'"),
    ({"conversations": [U, {**A, "metadata": 3}]}, "conversations[1].metadata: expected a string (the tool name)"),
    (
        {"conversations": [U, {"role": "tool", "name": "f", "observation": "x"}, A]},
        "conversations[1].parameters: missing",
    ),
    (
        {"conversations": [U, {"role": "observation", "content": "r"}, A]},
        "conversations[1]: an observation must follow a tool call",
    ),
    ({"conversations": []}, "conversations: the conversation is empty"),
    ({"conversations": [U]}, "conversations: no assistant message to learn from"),
    (
        {"conversations": [U, {**A, "loss": False}]},
        "no assistant message to learn from (every assistant message has loss",
    ),
    ({"conversations": "hello"}, "conversations: expected a list of messages, got a string"),
    ({"conversations": [U, A], "tools": 5}, "tools: expected a list of tool definitions"),
    (
        {"conversations": [{"role": "system", "content": "s", "tools": "x"}, U, A]},
        "conversations[0].tools: expected a list",
    ),
    ([1, 2], "record: expected a JSON object, got a list"),
]


@pytest.mark.parametrize(("record", "message"), BAD, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD)])
def test_each_malformed_record_gets_one_line(tmp_path: Path, record: object, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"conversations": [U, A]}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataErrors) as info:
        load_records(path)
    assert len(info.value.issues) == 1
    line = str(info.value.issues[0])
    assert line.startswith(f"{path}:2: ") and message in line, line
    assert "\n" not in line


def test_pairs_fields_and_history_pairs(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [
        {"prompt": "q", "response": 7},
        {"prompt": "q", "response": "a", "history": [["only one"]]},
        {"prompt": "q", "response": "a", "history": "nope"},
        {"prompt": "q"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataErrors) as info:
        load_records(path)
    assert [str(i).split(": ", 1)[1] for i in info.value.issues] == [
        "response: expected a string, got a number",
        'history[0]: expected a [query, response] pair, got ["only one"]',
        "history: expected a list of [query, response] pairs, got a string",
        "response: missing",
    ]


def test_all_problems_are_reported_in_one_run_and_skip_invalid(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [
        json.dumps({"conversations": [U, A]}),
        "{broken",
        json.dumps({"conversations": []}),
        json.dumps({"conversations": [U, A]}),
        "[]",
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataErrors) as info:
        load_records(path)
    assert [i.origin.line for i in info.value.issues] == [2, 3, 5]
    assert str(info.value).splitlines()[0] == "3 invalid records (fix them, or pass --skip-invalid to skip them):"
    report = Report()
    records = load_records(path, skip_invalid=True, report=report)
    assert [r.origin.line for r in records] == [1, 4] and len(report.invalid) == 3
