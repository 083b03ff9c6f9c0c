"""What a new user types, run as typed: official GLM-4 config keys and tool data, and the one-line answers to mistakes.

Each test runs the real command line (``glmtune.cli.main`` with the user's argv) on tiny checkpoints and tokenizers,
with data in the official shapes written here.
"""

from __future__ import annotations

import json
import re
import subprocess
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

REPO = Path(__file__).resolve().parents[2]
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
    for name in ("train.jsonl", "dev.jsonl"):
        write_jsonl(tmp_path / "data" / name, glm4_records())
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


# ------------------------------------------------------------------------------------------ 4 / 6: one clear line
def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_preprocess_missing_and_empty_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "ids.jsonl"
    assert glmtune(monkeypatch, "preprocess", "--model", str(CHATGLM3), "--data", "missing.json", "--output", "o") == 2
    assert _one_line(capsys) == "error: missing.json: no such file or directory"
    (tmp_path / "empty.json").write_text("")
    assert (
        glmtune(monkeypatch, "preprocess", "--model", str(CHATGLM3), "--data", "empty.json", "--output", str(out)) == 2
    )
    assert "empty.json: no records" in _one_line(capsys) and not out.exists()


def test_official_form_names_the_real_problem_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    monkeypatch.chdir(tmp_path)
    for d in ("data", "empty_model", "configs", "output"):
        (tmp_path / d).mkdir()
    (tmp_path / "configs" / "lora.yaml").write_text(yaml.safe_dump(glm4_lora_yaml(current=True)))
    # an output directory of an earlier, different run: not what is wrong here
    (tmp_path / "output" / "glmtune_run.json").write_text('{"fingerprint": "0", "summary": {"data": ["x"]}}')
    assert glmtune(monkeypatch, "train", "data", str(GLM4), "configs/lora.yaml") == 2
    err = _one_line(capsys)
    assert "data/train.jsonl: no such file (data_config.train_file of configs/lora.yaml" in err
    assert "DATA_DIR holds nothing" in err and "different run" not in err
    write_jsonl(tmp_path / "data" / "train.jsonl", glm4_records())
    write_jsonl(tmp_path / "data" / "dev.jsonl", glm4_records())
    assert glmtune(monkeypatch, "train", "data", "empty_model", "configs/lora.yaml") == 2
    assert "empty_model: MODEL_DIR holds no config.json" in _one_line(capsys)


def test_glmtune_form_checks_paths_before_the_output_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "glmtune_run.json").write_text('{"fingerprint": "0", "summary": {}}')
    (tmp_path / "c.yaml").write_text(
        f"model: {{path: {GLM4}}}\ndata: {{train: t.jsonl}}\ntraining: {{output_dir: out}}\n"
    )
    assert glmtune(monkeypatch, "train", "c.yaml", "--data.eval", "null") == 2  # null = no eval set, not a TypeError
    assert _one_line(capsys) == "error: data.train t.jsonl: no such file or directory"


def test_eval_strategy_no_is_the_string_no(tmp_path: Path) -> None:
    from glmtune.config import load_config

    (tmp_path / "c.yaml").write_text("model: {path: m}\ndata: {train: t.json, eval: e.json}\n")
    cfg = load_config(tmp_path / "c.yaml", ["--training.eval_strategy", "no", "--data.eval", "null"])
    assert cfg.training.eval_strategy == "no" and cfg.data.eval == []


def test_make_tiny_force_and_predict_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "tiny"
    assert glmtune(monkeypatch, "make-tiny", "--family", "chatglm3", str(ckpt)) == 0
    capsys.readouterr()
    assert glmtune(monkeypatch, "make-tiny", "--family", "chatglm3", str(ckpt)) == 2
    assert "already exists (use --force to replace it)" in _one_line(capsys)
    assert glmtune(monkeypatch, "make-tiny", "--family", "chatglm3", "--force", str(ckpt)) == 0
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"conversations": [{"role": "user", "content": 3}]}])
    rc = glmtune(monkeypatch, "predict", str(ckpt), "--data", str(bad), "--output", str(tmp_path / "p.jsonl"))
    err = capsys.readouterr().err
    assert rc == 2 and "--skip-invalid" not in err and "bad.jsonl:1: conversations[0].content" in err


# ------------------------------------------------------------------------------------------ 11: plain-text output
def test_show_piped_marks_learned_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GLMTUNE_CACHE", str(tmp_path / "cache"))
    record = {"conversations": [{"role": "user", "content": "问题"}, {"role": "assistant", "content": "回答"}]}
    data = write_jsonl(tmp_path / "d.jsonl", [record])
    args = ["preprocess", "--model", str(CHATGLM3), "--data", str(data), "--output", str(tmp_path / "o"), "--show", "1"]
    assert glmtune(monkeypatch, *args) == 0
    out = capsys.readouterr().out  # captured: not a terminal, as `> file`
    assert "\x1b[" not in out and "⟦trained on⟧" in out
    prompt, learned = out.split("sample 1:")[1].split("<|assistant|>")
    assert "问题" in prompt and "⟦" not in prompt  # the prompt is not learned
    assert re.fullmatch(r"⟦\s*回答\s*⟧\s*", learned)


def test_help_keeps_long_option_names_at_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer.main

    from glmtune.cli import app

    monkeypatch.setenv("COLUMNS", "80")
    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert glmtune(monkeypatch, name, "--help") == 0
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= 80, name
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--"):
                    assert opt in out, f"glmtune {name} --help: {opt} is cut"


# ------------------------------------------------------------------------------------------ 5: adapter vs base
def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``glmtune ARGS`` in a fresh process (warnings reach stderr as the user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "glmtune.cli", *args], cwd=REPO, capture_output=True, text=True, input=stdin, timeout=300
    )


@pytest.fixture(scope="module")
def chatglm3_adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny ChatGLM3 base and a LoRA adapter saved from it as training saves one (with its base record)."""
    from peft import LoraConfig, get_peft_model

    import glmtune as g
    from glmtune.model.adapters import BASE_FILE, base_record
    from glmtune.model.tiny import make_tiny

    base = make_tiny("chatglm3", tmp_path_factory.mktemp("b") / "chatglm3")
    loaded = g.load(base)
    model = get_peft_model(loaded.model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    out = tmp_path_factory.mktemp("a") / "lora"
    model.save_pretrained(str(out), save_embedding_layers=False)
    (out / BASE_FILE).write_text(json.dumps(base_record(base, loaded.family)))
    return base, out


def test_adapter_of_another_family_is_refused(
    chatglm3_adapter: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from glmtune.model.tiny import make_tiny

    _, adapter = chatglm3_adapter
    chatglm2 = make_tiny("chatglm2", tmp_path / "chatglm2")
    for model, title in ((GLM4, "GLM-4"), (chatglm2, "ChatGLM2")):
        assert glmtune(monkeypatch, "chat", str(model), "--adapter", str(adapter), "--prompt", "你好") == 2
        err = _one_line(capsys)
        assert "trained on a ChatGLM3-6B model" in err and title in err and "does not apply" in err


def test_adapter_on_another_base_warns(chatglm3_adapter: tuple[Path, Path], tmp_path: Path) -> None:
    from glmtune.model.tiny import make_tiny

    base, adapter = chatglm3_adapter
    other = make_tiny("chatglm3", tmp_path / "other", seed=1)
    proc = _cli("chat", str(other), "--adapter", str(adapter), "--prompt", "你好", "--max-new-tokens", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"warning: {adapter}: trained on {base.resolve()}, applied to {other}" in proc.stderr
    same = _cli("chat", str(base), "--adapter", str(adapter), "--prompt", "你好", "--max-new-tokens", "2")
    assert same.returncode == 0 and "warning:" not in same.stderr


# ------------------------------------------------------------------------------------------ 9: observation turns
def test_chat_feeds_an_observation_back(
    chatglm3_adapter: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    base, _ = chatglm3_adapter
    monkeypatch.setattr(sys, "stdin", io.StringIO('北京天气?\nobservation: {"temperature": 20}\nexit\n'))
    assert glmtune(monkeypatch, "chat", str(base), "--max-new-tokens", "3", "--temperature", "0") == 0
    out = capsys.readouterr()
    assert "observation: RESULT" in out.out  # the banner says how
    assert out.out.count("assistant> ") == 2 and "error" not in out.err  # the observation got its own answer


# ------------------------------------------------------------------------------------------ 10: ChatGLM-6B
def test_chatglm6b_empty_replies_are_explained_and_native_export_warned(tmp_path: Path) -> None:
    from glmtune.model.tiny import make_tiny

    tiny = make_tiny("chatglm", tmp_path / "chatglm")
    data = write_jsonl(tmp_path / "dev.jsonl", [{"prompt": "你是谁？", "response": "我是助手。"}])
    proc = _cli(
        "predict", str(tiny), "--data", str(data), "--output", str(tmp_path / "p.jsonl"), "--max-new-tokens", "8"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads((tmp_path / "p.jsonl").read_text())
    assert row["prediction"] == "" and row["finish_reason"] == "length"
    # why: its output layer is its input embedding, so an untrained model echoes the prompt's last token, <sop>
    assert "warning: 1 of 1 predictions: the reply is empty" in proc.stderr and "8 x <sop>" in proc.stderr
    chat = _cli("chat", str(tiny), "--prompt", "你是谁？", "--max-new-tokens", "4", "--temperature", "0")
    assert chat.returncode == 0 and "warning: the reply is empty" in chat.stderr
    conv = _cli("convert", str(tiny), str(tmp_path / "native"), "--to", "native")
    assert conv.returncode == 0, conv.stderr[-2000:]
    assert "warning:" in conv.stderr and "transformers has no ChatGLM-6B class" in conv.stderr
    assert "--to original" in conv.stderr


@pytest.mark.parametrize("bad", ["long", 0, 12.5, True])
def test_official_form_length_is_a_whole_number(
    bad: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "train.jsonl", glm4_records())
    write_jsonl(tmp_path / "data" / "dev.jsonl", glm4_records())
    (tmp_path / "lora.yaml").write_text(yaml.safe_dump({**glm4_lora_yaml(current=True), "max_input_length": bad}))
    assert glmtune(monkeypatch, "train", "data", str(GLM4), "lora.yaml") == 2
    assert _one_line(capsys) == f"error: lora.yaml: max_input_length: expected a whole number >= 1, got {bad!r}"
