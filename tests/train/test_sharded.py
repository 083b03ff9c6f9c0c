"""Sharded training on 2 CPU processes over gloo, launched as a user launches it, against one process.

FSDP2 runs from ``accelerate launch --config_file configs/deepspeed/fsdp.yaml``, DeepSpeed ZeRO-2/3 from ``torchrun``
with ``--training.deepspeed configs/deepspeed/ds_zero_N.json``. Each run trains 2 steps and saves, then a new launch
resumes from that checkpoint for 2 more; its 4 losses and its final weights must match one process that sees the
same global batch (2 x 4 rows as 4 rows x 2 accumulation steps).

Tolerance: 1e-5 on losses (about 9.x), 1e-4 relative (Frobenius norm) per weight tensor. Everything is fp32, so
only the order of the sums differs (the sharded runs add the two ranks' gradients in a reduce-scatter /
all-reduce, one process adds two micro-batches): a few ulps per gradient, which Adam's step turns into relative
weight differences of 1e-8 .. 1e-5 (observed). One exception: the key biases. Softmax ignores a shift shared by all
keys, so on the unrotated half of each head their true gradient is 0 and both runs see only round-off there,
which Adam normalises into steps of up to ~lr either way; they are held to that bound (4 x lr per step) instead.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
DS = REPO / "configs" / "deepspeed"
LR = {"lora": 0.01, "full": 0.001}


def _config(tmp: Path, ckpt: Path, out: Path, method: str, accumulation: int, steps: int) -> Path:
    cfg = tmp / f"{out.name}-{steps}.yaml"
    cfg.write_text(
        f"""
model: {{path: {ckpt}}}
data:
  train: {REPO / "examples" / "chatglm3_conversations.json"}
  max_length: 128
method: {{name: {method}, lora_r: 8, lora_dropout: 0.0}}
training:
  output_dir: {out}
  max_steps: {steps}
  learning_rate: {LR[method]}
  lr_scheduler_type: constant
  per_device_train_batch_size: 4
  gradient_accumulation_steps: {accumulation}
  train_sampling_strategy: sequential
  logging_steps: 1
  save_steps: 2
  seed: 3
  disable_tqdm: true
  report_to: none
  use_cpu: true
  plot_loss: false
  resume: auto
""",
        encoding="utf-8",
    )
    return cfg


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(backend: str, config: Path) -> list[str]:
    """The launch a user types for ``backend`` (2 processes on this machine)."""
    train = ["-m", "glmtune.cli", "train", str(config)]
    if backend == "fsdp":
        return [
            *(sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(DS / "fsdp.yaml")),
            *("--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"),
            *("--main_process_port", str(_port()), *train),
        ]
    stage = {"zero2": "ds_zero_2.json", "zero3": "ds_zero_3.json"}[backend]
    return [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_port())),
        *train,
        *("--training.deepspeed", str(DS / stage)),
    ]


def _run(cmd: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    # the first DeepSpeed run on a machine compiles its shared-memory op (cached in ~/.cache/torch_extensions)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=840, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def _losses(out: Path) -> list[float]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


def _weights(out: Path, method: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if method == "lora":
        return load_file(str(out / "adapter_model.safetensors"))
    files = sorted(out.glob("model*.safetensors"))
    assert files, f"{out}: no model files"
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


_REFERENCE: dict[str, Path] = {}


def _reference(method: str, ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One process, 4 rows x 2 accumulation steps, 4 steps (computed once per method)."""
    if method not in _REFERENCE:
        from glmtune.config import load_config
        from glmtune.train.recipe import train

        tmp = tmp_path_factory.mktemp(f"single-{method}")
        train(load_config(_config(tmp, ckpt, tmp / "out", method, 2, 4), []))
        _REFERENCE[method] = tmp / "out"
    return _REFERENCE[method]


CASES = [("fsdp", "lora"), ("fsdp", "full"), ("zero2", "lora"), ("zero3", "lora"), ("zero3", "full")]


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "method"), CASES, ids=[f"{b}-{m}" for b, m in CASES])
def test_two_processes_save_resume_match_one(
    backend: str, method: str, tiny_factory, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ckpt = tiny_factory("chatglm3")
    reference = _reference(method, ckpt, tmp_path_factory)
    out = tmp_path / "out"
    _run(launch_command(backend, _config(tmp_path, ckpt, out, method, 1, 2)))
    first = out / "checkpoint-2"
    assert (first / "trainer_state.json").is_file()
    assert (first / ("adapter_model.safetensors" if method == "lora" else "model.safetensors")).is_file()
    log = _run(launch_command(backend, _config(tmp_path, ckpt, out, method, 1, 4)))  # resume: auto
    assert log.count("{'loss'") == 2, log[-2000:]  # it went on from checkpoint-2: steps 3 and 4 only
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert (out / "checkpoint-4").is_dir() and not (out / ".staging").exists()

    ours, theirs = _losses(out), _losses(reference)
    assert len(ours) == len(theirs) == 4
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) <= 1e-5, (ours, theirs)
    a, b = _weights(out, method), _weights(reference, method)
    assert sorted(a) == sorted(b)
    for name in a:
        x, y = a[name].float(), b[name].float()
        if ".k_proj.bias" in name:  # gradient 0 up to round-off (module docstring)
            assert (x - y).abs().max() <= 4 * LR[method] * 4, name
        else:
            assert (x - y).norm() <= 1e-4 * y.norm(), (name, ((x - y).norm() / y.norm()).item())
