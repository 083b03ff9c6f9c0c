"""The MoE families under the sharded setups the README names for the large checkpoints, on 2 CPU processes.

GLM-4.5 full fine-tuning: DeepSpeed ZeRO-3 with parameters and optimizer states offloaded to CPU
(``configs/deepspeed/ds_zero_3_offload.json``); LoRA on the routed experts under FSDP2 (``fsdp_moe.yaml``). Each run
trains 2 steps on the tiny MoE checkpoint and its losses match one process with the same global batch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.train.test_sharded import DS, REPO, _losses, _port, _run

TARGETS = "[attention, dense_mlp, shared_experts, experts]"


def _config(tmp: Path, ckpt: Path, out: Path, method: str, accumulation: int) -> Path:
    cfg = tmp / f"{out.name}.yaml"
    targets = f", lora_targets: {TARGETS}" if method == "lora" else ""
    cfg.write_text(
        f"""
model: {{path: {ckpt}}}
data: {{train: {REPO / "examples" / "chatglm3_conversations.json"}, max_length: 96}}
method: {{name: {method}, lora_r: 4, lora_dropout: 0.0{targets}}}
training:
  output_dir: {out}
  max_steps: 2
  learning_rate: {0.01 if method == "lora" else 0.001}
  lr_scheduler_type: constant
  per_device_train_batch_size: 2
  gradient_accumulation_steps: {accumulation}
  train_sampling_strategy: sequential
  logging_steps: 1
  save_steps: 2
  seed: 3
  disable_tqdm: true
  report_to: none
  use_cpu: true
  plot_loss: false
""",
        encoding="utf-8",
    )
    return cfg


def _launch(backend: str, config: Path) -> list[str]:
    train = ["-m", "glmtune.cli", "train", str(config)]
    if backend == "fsdp":
        return [
            *(sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(DS / "fsdp_moe.yaml")),
            *("--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"),
            *("--main_process_port", str(_port()), *train),
        ]
    return [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_port())),
        *train,
        *("--training.deepspeed", str(DS / "ds_zero_3_offload.json")),
    ]


CASES = [("zero3-offload", "full"), ("fsdp", "lora")]


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "method"), CASES, ids=[f"{b}-{m}" for b, m in CASES])
def test_moe_sharded_matches_one_process(backend: str, method: str, tiny_factory, tmp_path: Path) -> None:
    from glmtune.config import load_config
    from glmtune.train.recipe import train

    ckpt = tiny_factory("glm4-moe")
    single = tmp_path / "single"
    train(load_config(_config(tmp_path, ckpt, single, method, 2), []))
    out = tmp_path / "sharded"
    _run(_launch(backend, _config(tmp_path, ckpt, out, method, 1)))
    assert (out / "checkpoint-2").is_dir()
    ours, theirs = _losses(out), _losses(single)
    assert len(ours) == len(theirs) == 2
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) <= 1e-4, (ours, theirs)
    state = json.loads((out / "trainer_state.json").read_text())
    assert all("router_aux_loss" in e for e in state["log_history"] if "loss" in e)
