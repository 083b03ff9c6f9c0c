"""A training killed with SIGKILL after a checkpoint resumes and reaches the uninterrupted run's loss."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _config(tmp: Path, ckpt: Path, out: Path, steps: int) -> Path:
    cfg = tmp / f"{out.name}.yaml"
    cfg.write_text(
        f"""
model: {{path: {ckpt}}}
data:
  train: {REPO / "examples" / "chatglm3_conversations.json"}
  max_length: 256
method: {{name: lora, lora_r: 8, lora_dropout: 0.1}}
training:
  output_dir: {out}
  max_steps: {steps}
  learning_rate: 0.01
  per_device_train_batch_size: 4
  logging_steps: 1
  save_steps: 5
  seed: 7
  disable_tqdm: true
  report_to: none
  resume: auto
""",
        encoding="utf-8",
    )
    return cfg


def _train(cfg: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "glmtune.cli", "train", str(cfg)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _final_loss(out: Path) -> float:
    state = json.loads((out / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e][-1]


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted(tiny_factory, tmp_path: Path) -> None:
    ckpt = tiny_factory("chatglm3")
    steps = 150
    ref_out, run_out = tmp_path / "ref", tmp_path / "run"
    ref = _train(_config(tmp_path, ckpt, ref_out, steps))
    assert ref.wait(timeout=300) == 0, ref.stdout.read().decode()[-3000:]

    victim = _train(_config(tmp_path, ckpt, run_out, steps))
    deadline = time.time() + 240
    while time.time() < deadline and not (run_out / "checkpoint-10" / "trainer_state.json").is_file():
        time.sleep(0.05)
        assert victim.poll() is None, "training finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert not (run_out / "trainer_state.json").is_file(), "the run was not interrupted"
    done = sorted(p.name for p in run_out.glob("checkpoint-*"))
    assert "checkpoint-10" in done

    resumed = _train(_config(tmp_path, ckpt, run_out, steps))
    log = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, log[-3000:]
    assert abs(_final_loss(run_out) - _final_loss(ref_out)) <= 1e-6


def test_resume_auto_picks_last_complete_checkpoint(tmp_path: Path) -> None:
    from glmtune.train.resume import resolve_resume

    for step, complete in ((5, True), (10, True), (15, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / "trainer_state.json").write_text("{}")
    (tmp_path / ".staging").mkdir()
    assert resolve_resume("auto", tmp_path) == str(tmp_path / "checkpoint-10")
    assert resolve_resume("5", tmp_path) == str(tmp_path / "checkpoint-5")
    assert resolve_resume(None, tmp_path) is None
