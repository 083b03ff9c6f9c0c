"""Every example config (method x family) trains its family's tiny checkpoint; the result loads and chats."""

from __future__ import annotations

from pathlib import Path

import pytest

from glmtune.config import load_config
from glmtune.infer import Engine, GenerationParams
from glmtune.infer.loading import load_for_inference
from glmtune.train.recipe import train

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").glob("*/*.yaml"))
CONFIGS = [c for c in CONFIGS if c.parent.name not in ("finetune_demo", "deepspeed")]
LR = {"lora": 2e-2, "qlora": 2e-2, "ptuning-v2": 5e-2, "freeze": 5e-3, "full": 5e-3}


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=[f"{c.parent.name}/{c.stem}" for c in CONFIGS])
def test_example_config_trains_and_chats(config: Path, tiny_factory, tmp_path: Path) -> None:
    family, method = config.parent.name, config.stem
    ckpt = tiny_factory(family)
    overrides = [
        "--model.path",
        str(ckpt),
        "--data.max_length",
        "256",
        "--training.output_dir",
        str(tmp_path / "out"),
        "--training.max_steps",
        "12",
        "--training.learning_rate",
        str(LR[method]),
        "--training.per_device_train_batch_size",
        "8",
        "--training.logging_steps",
        "2",
        "--training.save_steps",
        "6",
        "--training.eval_steps",
        "6",
        "--training.warmup_steps",
        "0",
        "--training.lr_scheduler_type",
        "constant",
        "--training.disable_tqdm",
        "true",
        "--training.bf16",
        "false",
    ]
    if method == "qlora":
        overrides += ["--training.optim", "adamw_torch"]
    if method == "ptuning-v2":
        overrides += ["--method.pre_seq_len", "8"]
    cfg = load_config(config, overrides)
    assert cfg.method.name == method
    result = train(cfg)
    assert result.first_loss is not None and result.last_loss is not None
    assert result.last_loss < result.first_loss, f"loss did not fall: {result.first_loss} -> {result.last_loss}"
    assert result.loss_plot is not None and result.loss_plot.stat().st_size > 1000
    assert result.trainer_state.is_file()
    assert (tmp_path / "out" / "checkpoint-12").is_dir()
    loaded = load_for_inference(tmp_path / "out") if method in ("lora", "qlora", "ptuning-v2") else None
    if loaded is None:
        loaded = load_for_inference(tmp_path / "out" / "checkpoint-12")
    reply, history = Engine(loaded).chat("你好", params=GenerationParams(max_new_tokens=8, do_sample=False))
    assert isinstance(reply.text, str) and history[-1]["role"] == "assistant"
