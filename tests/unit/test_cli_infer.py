"""chat / predict / eval on a real tiny checkpoint through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from glmtune.model.tiny import make_tiny

REPO = Path(__file__).resolve().parents[2]


def glmtune(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "glmtune.cli", *args], cwd=REPO, capture_output=True, text=True, input=stdin, timeout=180
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny("chatglm3", tmp_path_factory.mktemp("m") / "ckpt")


@pytest.fixture(scope="module")
def adapter(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from peft import LoraConfig, get_peft_model

    import glmtune as g

    model = get_peft_model(g.load(tiny).model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    out = tmp_path_factory.mktemp("a") / "lora"
    model.save_pretrained(str(out), save_embedding_layers=False)
    return out


def test_chat_one_shot(tiny: Path) -> None:
    proc = glmtune("chat", str(tiny), "--prompt", "你是谁?", "--max-new-tokens", "8", "--temperature", "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_chat_inference_hf_shape(adapter: Path) -> None:
    """The official `inference_hf.py CKPT --prompt` shape: a checkpoint whose adapter config names its base."""
    proc = glmtune("chat", str(adapter), "--prompt", "你好", "--max-new-tokens", "6", "--temperature", "0")
    assert proc.returncode == 0, proc.stderr


def test_chat_interactive_history(tiny: Path) -> None:
    proc = glmtune(
        "chat",
        str(tiny),
        "--max-new-tokens",
        "4",
        "--temperature",
        "0",
        "--system",
        "简短回答。",
        stdin="你好\n再说一次\nclear\n你好\nexit\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("user>") >= 4


def test_chat_with_tools(tiny: Path) -> None:
    proc = glmtune(
        "chat",
        str(tiny),
        "--tools",
        str(REPO / "examples" / "tools.json"),
        "--prompt",
        "北京天气",
        "--max-new-tokens",
        "6",
        "--temperature",
        "0",
    )
    assert proc.returncode == 0, proc.stderr


def test_predict_then_eval(tiny: Path, adapter: Path, tmp_path: Path) -> None:
    data = REPO / "examples" / "chatglm3_conversations_dev.json"
    out = tmp_path / "pred.jsonl"
    proc = glmtune(
        "predict",
        str(tiny),
        "--adapter",
        str(adapter),
        "--data",
        str(data),
        "--output",
        str(out),
        "--max-new-tokens",
        "6",
        "--batch-size",
        "3",
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    n = len(json.loads(data.read_text()))
    assert len(rows) == n and all({"id", "prediction", "reference"} <= set(r) for r in rows)
    assert rows[0]["id"].endswith(":1") or rows[0]["id"]
    proc = glmtune("eval", "--predictions", str(out))
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert set(scores) >= {"rouge-1", "rouge-2", "rouge-l", "bleu-4"} and scores["count"] == n
    proc = glmtune("eval", str(tiny), "--data", str(data), "--max-new-tokens", "4", "--variant", "ptuning")
    assert proc.returncode == 0, proc.stderr
    assert "bleu-4" in json.loads(proc.stdout)


def test_bad_predictions_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prediction": "a", "reference": "b"}\n{"prediction": 3}\nnot json\n')
    proc = glmtune("eval", "--predictions", str(bad))
    assert proc.returncode == 2 and f"{bad}:2" in proc.stderr and f"{bad}:3" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_reads_well() -> None:
    proc = glmtune("--help")
    assert proc.returncode == 0
    for command in ("make-tiny", "convert", "train", "chat", "predict", "eval", "export", "demo"):
        assert command in proc.stdout
        sub = glmtune(command, "--help")
        assert sub.returncode == 0 and "Usage" in sub.stdout, command


def test_make_tiny_help_names_every_family() -> None:
    from glmtune.cli import FAMILY_HELP
    from glmtune.families import VARIANTS

    assert FAMILY_HELP.split(" | ") == list(VARIANTS)


def test_predict_writes_reasoning_apart(tmp_path: Path) -> None:
    """A reasoning family's <think> text goes to "reasoning", never into the scored prediction; --no-thinking
    renders the template's empty think block, so the whole reply is the answer."""
    ckpt = make_tiny("glm4-moe-lite", tmp_path / "ckpt")
    rows = {}
    for switch in ("--thinking", "--no-thinking"):
        out = tmp_path / f"{switch}.jsonl"
        proc = glmtune("predict", str(ckpt), "--data", str(REPO / "examples/adgen_dev.json"), "--output", str(out),
                       "--max-new-tokens", "6", switch)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows[switch] = [json.loads(line) for line in out.read_text().splitlines()]
    thinking, plain = rows["--thinking"], rows["--no-thinking"]
    assert any(r.get("reasoning") for r in thinking) and not any("reasoning" in r for r in plain)
    assert all("<think>" not in r["prediction"] and "</think>" not in r["prediction"] for r in thinking + plain)
    assert all(r["prediction"] for r in plain)
