"""DDP on 2 CPU processes (torchrun, gloo) gives the losses of 1 process with doubled gradient accumulation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _config(tmp: Path, ckpt: Path, out: Path, accumulation: int, ddp: bool = False) -> Path:
    cfg = tmp / f"{out.name}.yaml"
    cfg.write_text(
        f"""
model: {{path: {ckpt}}}
data:
  train: {REPO / "examples" / "chatglm3_conversations.json"}
  max_length: 256
method: {{name: lora, lora_r: 8, lora_dropout: 0.0}}
training:
  output_dir: {out}
  max_steps: 6
  learning_rate: 0.01
  per_device_train_batch_size: 4
  gradient_accumulation_steps: {accumulation}
  train_sampling_strategy: sequential
  logging_steps: 1
  save_strategy: "no"
  seed: 3
  disable_tqdm: true
  report_to: none
  use_cpu: true
"""
        + ("  ddp_backend: gloo\n" if ddp else ""),
        encoding="utf-8",
    )
    return cfg


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(out: Path) -> list[float]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


@pytest.mark.slow
def test_two_process_ddp_matches_accumulation(tiny_factory, tmp_path: Path) -> None:
    ckpt = tiny_factory("chatglm3")
    single = subprocess.run(
        [sys.executable, "-m", "glmtune.cli", "train", str(_config(tmp_path, ckpt, tmp_path / "single", 2))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-3000:]
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(_free_port()),
            "-m",
            "glmtune.cli",
            "train",
            str(_config(tmp_path, ckpt, tmp_path / "ddp", 1, ddp=True)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stdout[-2000:] + ddp.stderr[-3000:]
    a, b = _losses(tmp_path / "single"), _losses(tmp_path / "ddp")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b, strict=False)) <= 1e-5, (a, b)
