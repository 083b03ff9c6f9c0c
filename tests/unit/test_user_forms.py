"""What a new user types, run as typed: official GLM-4 config keys and tool data, and the one-line answers to mistakes.

Each test runs the real command line (``glmtune.cli.main`` with the user's argv) on tiny checkpoints and tokenizers,
with data in the official shapes written here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from glmtune.cli import main
from glmtune.config import load_official
from glmtune.data import render_records
from glmtune.families import get_family
from glmtune.tokenization import load_tokenizer
from tests.conftest import fixtures_dir
from tests.official_shapes import glm4_lora_yaml, glm4_records

GLM4 = fixtures_dir("model", "glm4", "ckpt")
CHATGLM3 = fixtures_dir("prep", "tokenizers", "chatglm3")


def glmtune(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run ``glmtune ARGS`` in this process; the exit code."""
    monkeypatch.setattr(sys, "argv", ["glmtune", *args])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tok4() -> Any:
    return load_tokenizer(GLM4, get_family("glm4"))


# ------------------------------------------------------------------------------------------ 1: combine / freezeV
@pytest.mark.parametrize("current", [True, False], ids=["finetune", "finetune_demo"])
def test_official_glm4_keys_are_accepted_with_their_meaning(current: bool, tmp_path: Path) -> None:
    import yaml

    (tmp_path / "data").mkdir()
    (tmp_path / "configs").mkdir()
    raw = glm4_lora_yaml(current)
    (tmp_path / "configs" / "lora.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_official(str(tmp_path / "data"), str(GLM4), str(tmp_path / "configs" / "lora.yaml"), None)
    assert cfg.data.mask_history is True and cfg.data.max_length == 1025
    assert any(n.startswith("freezeV:") for n in cfg.notes)
    assert cfg.method.lora_targets == raw["peft_config"]["target_modules"]
    raw["combine"] = False
    (tmp_path / "configs" / "lora.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_official(str(tmp_path / "data"), str(GLM4), str(tmp_path / "configs" / "lora.yaml"), None)
    assert cfg.data.mask_history is False


def test_combine_learns_only_the_last_reply(tok4: Any) -> None:
    record = glm4_records()[1]  # two user/assistant rounds
    every = render_records([record], tok4, "glm4")[0]
    last = render_records([record], tok4, "glm4", mask_history=True)[0]
    assert every["input_ids"] == last["input_ids"]
    learned = [t for t in last["labels"] if t != -100]
    assert tok4.decode(learned[:-1]).strip() == "我是助手。" and learned[-1] == tok4.eos_token_id
    assert len([t for t in every["labels"] if t != -100]) > len(learned)


# ------------------------------------------------------------------------------------------ 2: JSON tool calls
def test_glm4_readme_tool_data_is_a_tool_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GLMTUNE_CACHE", str(tmp_path / "cache"))
    data = write_jsonl(tmp_path / "train.jsonl", glm4_records())
    out = tmp_path / "ids.jsonl"
    assert glmtune(monkeypatch, "preprocess", "--model", str(GLM4), "--data", str(data), "--output", str(out)) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 3  # nothing refused, nothing skipped
    text = tok4_text(rows[2]["input_ids"])
    # rendered as GLM-4's own tool-call turn, what the model emits at inference
    assert 'get_recommended_books\n{"interests": ["history"]}' in text and '"arguments"' not in text
    args = ["preprocess", "--model", str(GLM4), "--data", str(data), "--output", str(out), "--skip-invalid"]
    assert glmtune(monkeypatch, *args) == 0
    assert "skipped" not in capsys.readouterr().err


def tok4_text(ids: list[int]) -> str:
    return load_tokenizer(GLM4, get_family("glm4")).decode(ids)


@pytest.mark.parametrize("fmt", ["sharegpt", "chatglm3"])
def test_json_content_calls_in_sharegpt_and_chatglm3(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLMTUNE_CACHE", str(tmp_path / "cache"))
    call = json.dumps({"name": "get_weather", "arguments": {"city": "北京"}}, ensure_ascii=False)
    tools = [{"name": "get_weather", "description": "weather", "parameters": {"type": "object"}}]
    if fmt == "sharegpt":
        turns = [("human", "天气?"), ("gpt", call), ("observation", "晴"), ("gpt", "晴天。")]
        record = {"conversations": [{"from": f, "value": v} for f, v in turns], "tools": json.dumps(tools)}
    else:
        turns = [("user", "天气?"), ("assistant", call), ("observation", "晴"), ("assistant", "晴天。")]
        record = {"tools": tools, "conversations": [{"role": r, "content": c} for r, c in turns]}
    data = write_jsonl(tmp_path / "d.jsonl", [record])
    out = tmp_path / "ids.jsonl"
    assert glmtune(monkeypatch, "preprocess", "--model", str(CHATGLM3), "--data", str(data), "--output", str(out)) == 0
    ids = json.loads(out.read_text())["input_ids"]
    text = load_tokenizer(CHATGLM3, get_family("chatglm3")).decode(ids)
    assert "tool_call(city='北京')" in text and '"arguments"' not in text


def test_observation_after_plain_text_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "not a call"},
            {"role": "observation", "content": "x"},
            {"role": "assistant", "content": "a"},
        ]
    }
    data = write_jsonl(tmp_path / "d.jsonl", [record])
    rc = glmtune(monkeypatch, "preprocess", "--model", str(GLM4), "--data", str(data), "--output", str(tmp_path / "o"))
    assert rc == 2
    assert "d.jsonl:1: messages[2]: an observation must follow a tool call" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
