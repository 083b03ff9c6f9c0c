"""Config mistakes are one clear line (with a "did you mean") before any training starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from glmtune.config import build_config, load_config
from glmtune.errors import GlmtuneError

REPO = Path(__file__).resolve().parents[2]
BASE = {"model": {"path": "x"}, "data": {"train": ["a.json"]}, "training": {"output_dir": "o"}}


def _with(section: str, **values) -> dict:
    raw = json.loads(json.dumps(BASE))
    raw.setdefault(section, {}).update(values)
    return raw


@pytest.mark.parametrize(
    ("raw", "overrides", "message"),
    [
        (_with("training", learning_rat=1e-4), None, "did you mean 'learning_rate'"),
        (_with("method", name="lorra"), None, "did you mean 'lora'"),
        (_with("modle"), None, "did you mean 'model'"),
        (BASE, {"trainig.max_steps": 3}, "did you mean 'training'"),
        (BASE, {"max_stepz": 3}, "did you mean 'max_steps'"),
        ({"data": {"train": ["a"]}}, None, "model.path is required"),
    ],
)
def test_config_mistakes(raw: dict, overrides: dict | None, message: str) -> None:
    with pytest.raises(GlmtuneError, match=message):
        build_config(raw, overrides, source="cfg.yaml")


def test_old_names_and_overrides(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "model: {path: m}\ndata: {train: t.json}\ntraining:\n  evaluation_strategy: steps\n"
        "  group_by_length: true\n  generation_config: {max_new_tokens: 7}\n"
    )
    cfg = load_config(cfg_file, ["--learning_rate", "3e-4", "--method", "ptuning-v2", "--training.max_steps=9"])
    assert cfg.training.eval_strategy == "steps"
    assert cfg.training.train_sampling_strategy == "group_by_length"
    assert cfg.training.learning_rate == 3e-4 and cfg.training.max_steps == 9
    assert cfg.method.name == "ptuning-v2" and cfg.generation == {"max_new_tokens": 7}
    assert cfg.data.train == ["t.json"]


@pytest.mark.parametrize("name", ["gradient_checkpointing", "activation_checkpointing"])
def test_checkpointing_under_either_name(name: str) -> None:
    """transformers 5 keeps ``gradient_checkpointing`` as an alias: both names switch it on, both read true."""
    cfg = build_config({**BASE, "training": {name: True, f"{name}_kwargs": {"use_reentrant": False}}}, source="c")
    args = cfg.training
    assert args.activation_checkpointing and args.gradient_checkpointing
    assert args.activation_checkpointing_kwargs == {"use_reentrant": False}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "glmtune.cli", "train", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def _yaml(tmp: Path, ckpt: Path, data: Path, out: Path, **method) -> Path:
    body = {
        "model": {"path": str(ckpt)},
        "data": {"train": [str(data)]},
        "method": {"name": "lora", **method},
        "training": {"output_dir": str(out), "max_steps": 2, "report_to": "none"},
    }
    path = tmp / "cfg.yaml"
    path.write_text(json.dumps(body))
    return path


@pytest.mark.slow
def test_errors_before_training(tiny_factory, tmp_path: Path) -> None:
    ckpt = tiny_factory("chatglm3")
    good = REPO / "examples" / "chatglm3_conversations.json"
    out = tmp_path / "out"
    # a LoRA target that is not in the model
    proc = _run([str(_yaml(tmp_path, ckpt, good, out, lora_targets=["nonexistent_proj"]))])
    assert proc.returncode == 2 and "nonexistent_proj not in this ChatGLM3-6B model" in proc.stderr
    assert "Traceback" not in proc.stderr and not (out / "checkpoint-1").exists()
    # a data file that fails validation: every bad line reported, nothing trained
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"conversations": [{"role": "user", "content": "hi"}]}\n{"conversations": 3}\n{oops\n')
    proc = _run([str(_yaml(tmp_path, ckpt, bad, out))])
    assert proc.returncode == 2, proc.stderr
    assert f"{bad}:2" in proc.stderr and f"{bad}:3" in proc.stderr
    assert not (out / "checkpoint-1").exists()
    # an output directory holding a different run
    first = _run([str(_yaml(tmp_path, ckpt, good, out))])
    assert first.returncode == 0, first.stderr[-2000:]
    other = _run([str(_yaml(tmp_path, ckpt, good, out, lora_r=4))])
    assert other.returncode == 2 and "holds a different run" in other.stderr
