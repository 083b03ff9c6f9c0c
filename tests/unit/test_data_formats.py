"""Formats: each record shape is detected without flags and normalised to the same messages; column/tag mappings
(ours or a LLaMA-Factory dataset_info entry) rename fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from glmtune.data import load_records
from glmtune.data.formats import detect, get_spec, spec_from_dataset_info
from glmtune.data.normalize import normalize
from glmtune.data.record import Origin, RawRecord
from glmtune.errors import GlmtuneError


def _msgs(record: Any) -> list[tuple[str, Any]]:
    return [(m["role"], m.get("tool_calls") or m["content"]) for m in record.messages]


def _norm(obj: dict[str, Any], fmt: str | None = None) -> Any:
    raw = RawRecord(obj, Origin("x.jsonl", 1))
    return normalize(raw, get_spec(fmt) or detect([raw], "x.jsonl"))


QA = [("user", "q"), ("assistant", "a")]
SHAPES = {
    "chatglm3": {"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    "glm4": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    "sharegpt": {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    "alpaca": {"instruction": "q", "input": "", "output": "a"},
    "input-output": {"input": "q", "output": "a"},
    "prompt-response": {"prompt": "q", "response": "a"},
    "adgen": {"content": "q", "summary": "a"},
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_shape_is_detected_and_normalised(name: str) -> None:
    record = _norm(SHAPES[name])
    assert record.fmt == name
    assert _msgs(record) == QA


def test_input_target_and_prompt_response_history() -> None:
    assert _msgs(_norm({"input": "q", "target": "a"})) == QA
    rec = _norm({"prompt": "q2", "response": "a2", "history": [["q1", "a1"]]})
    assert _msgs(rec) == [("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]


def test_alpaca_with_system_input_and_history() -> None:
    rec = _norm(
        {"instruction": "translate", "input": "apple", "output": "苹果", "system": "S", "history": [["h", "i"]]}
    )
    assert _msgs(rec) == [
        ("system", "S"),
        ("user", "h"),
        ("assistant", "i"),
        ("user", "translate\napple"),
        ("assistant", "苹果"),
    ]


def test_chatglm3_tools_tool_turn_loss_and_metadata() -> None:
    rec = _norm(
        {
            "tools": [{"name": "calc", "parameters": {}}],
            "conversations": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "3*7?", "loss": False},
                {"role": "tool", "name": "calc", "parameters": {"expr": "3*7"}, "observation": 21},
                {"role": "assistant", "content": "21", "metadata": "", "loss": True},
            ],
        }
    )
    assert rec.tools == [{"name": "calc", "parameters": {}}]
    assert [m["role"] for m in rec.messages] == ["system", "user", "assistant", "observation", "assistant"]
    assert rec.messages[2]["tool_calls"] == [{"name": "calc", "arguments": {"expr": "3*7"}}]
    assert rec.messages[3]["content"] == "21"
    assert rec.messages[4]["loss"] is True


def test_sharegpt_function_calls_single_parallel_and_tools_string() -> None:
    tools = json.dumps([{"name": "w", "description": "weather", "parameters": {}}])
    rec = _norm(
        {
            "conversations": [
                {"from": "system", "value": "sys"},
                {"from": "human", "value": "weather in A and B?"},
                {
                    "from": "function_call",
                    "value": json.dumps(
                        [{"name": "w", "arguments": {"c": "A"}}, {"name": "w", "arguments": '{"c": "B"}'}]
                    ),
                },
                {"from": "observation", "value": "[1, 2]"},
                {"from": "gpt", "value": "A 1, B 2"},
                {"from": "human", "value": "and C?"},
                {"from": "function_call", "value": json.dumps({"name": "w", "arguments": {"c": "C"}})},
                {"from": "observation", "value": "3"},
                {"from": "gpt", "value": "C 3"},
            ],
            "tools": tools,
        }
    )
    assert rec.fmt == "sharegpt" and rec.tools == json.loads(tools)
    calls = [m["tool_calls"] for m in rec.messages if m.get("tool_calls")]
    assert calls == [
        [{"name": "w", "arguments": {"c": "A"}}, {"name": "w", "arguments": {"c": "B"}}],
        [{"name": "w", "arguments": {"c": "C"}}],
    ]


def test_glm4_messages_with_system_tools_and_openai_tool_calls() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    rec = _norm(
        {
            "messages": [
                {"role": "system", "content": "", "tools": [tool]},
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "content": "done"},
                {"role": "assistant", "content": "ok"},
            ]
        }
    )
    assert rec.messages[0]["tools"] == [tool]
    assert rec.messages[2]["tool_calls"] == [{"name": "f", "arguments": {}}]
    assert rec.messages[3]["role"] == "observation"


def test_unclassifiable_file_names_the_keys_it_saw(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(GlmtuneError, match=r"cannot tell the data format from the keys seen \(answer, question\)"):
        load_records(path)


def test_columns_override_and_llama_factory_dataset_info(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    recs = load_records(data, fmt="prompt-response", columns={"prompt": "question", "response": "answer"})
    assert _msgs(recs[0]) == QA
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps([{"dialog": [{"speaker": "me", "text": "q"}, {"speaker": "bot", "text": "a"}], "sys": "be nice"}])
    )
    info = tmp_path / "dataset_info.json"
    info.write_text(
        json.dumps(
            {
                "mine": {
                    "file_name": "chat.json",
                    "formatting": "sharegpt",
                    "columns": {"messages": "dialog", "system": "sys"},
                    "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"},
                },
                "alp": {"file_name": "qa.jsonl", "columns": {"prompt": "question", "response": "answer"}},
            }
        )
    )
    spec, file = spec_from_dataset_info(info, "mine")
    assert file == chat
    assert _msgs(load_records(file, fmt=spec)[0]) == [("system", "be nice"), *QA]
    spec, file = spec_from_dataset_info(info, "alp")
    assert _msgs(load_records(file, fmt=spec)[0]) == QA


def test_csv_cells_holding_json_lists(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('prompt,response,history\nq2,a2,"[[""q1"", ""a1""]]"\n')
    assert len(load_records(path)[0].messages) == 4
