"""``glmtune demo``: the main job on the bundled tiny default, end to end, on the real code paths.

make a tiny ChatGLM3 checkpoint -> LoRA fine-tune it on examples/ -> save adapter, trainer_state.json and the loss
plot -> load base + adapter and answer one question in chat -> print where every artefact went.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import typer

QUESTION = "你是谁？"


def examples_dir() -> Path:
    """The sample data: the repository's examples/ (or the copy shipped inside the package)."""
    repo = Path(__file__).resolve().parents[2] / "examples"
    if (repo / "chatglm3_conversations.json").is_file():
        return repo
    return Path(str(resources.files("glmtune") / "assets" / "examples"))


def run_demo(workdir: Path, steps: int = 120) -> None:
    from glmtune.config import build_config
    from glmtune.infer import Engine, GenerationParams
    from glmtune.infer.loading import load_for_inference
    from glmtune.model.tiny import make_tiny
    from glmtune.train.recipe import train

    start = time.time()
    workdir = Path(workdir)
    base = workdir / "tiny-chatglm3"
    if not (base / "config.json").is_file():
        typer.secho(f"[1/4] making a tiny ChatGLM3 checkpoint in {base}", bold=True)
        make_tiny("chatglm3", base)
    else:
        typer.secho(f"[1/4] using the tiny ChatGLM3 checkpoint in {base}", bold=True)
    data = examples_dir()
    out = workdir / "lora"
    cfg = build_config(
        {
            "model": {"path": str(base)},
            "data": {
                "train": [str(data / "chatglm3_conversations.json")],
                "eval": [str(data / "chatglm3_conversations_dev.json")],
                "max_length": 256,
            },
            "method": {
                "name": "lora",
                "lora_r": 16,
                "lora_alpha": 32,
                "lora_dropout": 0.0,
                "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"],
            },
            "training": {
                "output_dir": str(out),
                "max_steps": steps,
                "learning_rate": 2e-2,
                "per_device_train_batch_size": 8,
                "per_device_eval_batch_size": 8,
                "logging_steps": 5,
                "eval_strategy": "steps",
                "eval_steps": max(steps // 3, 1),
                "save_steps": max(steps // 2, 1),
                "save_total_limit": 2,
                "lr_scheduler_type": "cosine",
                "warmup_steps": 5,
                "seed": 42,
                "overwrite_output_dir": True,
                "report_to": "none",
            },
        },
        source="glmtune demo",
    )
    typer.secho(f"[2/4] LoRA fine-tuning for {steps} steps on {data / 'chatglm3_conversations.json'}", bold=True)
    result = train(cfg)
    typer.echo(f"      loss {result.first_loss:.3f} -> {result.last_loss:.3f}")
    typer.secho("[3/4] loading base + adapter for chat", bold=True)
    engine = Engine(load_for_inference(base, out))
    reply, _ = engine.chat(QUESTION, params=GenerationParams(max_new_tokens=40, do_sample=False))
    typer.secho(f"[4/4] user: {QUESTION}", bold=True)
    typer.echo(f"      assistant: {reply.text}")
    typer.echo("")
    typer.secho("artefacts", bold=True)
    typer.echo(f"  tiny checkpoint (original THUDM layout): {base}")
    typer.echo(f"  LoRA adapter:                            {out}/adapter_model.safetensors")
    typer.echo(f"  trainer state:                           {result.trainer_state}")
    typer.echo(f"  loss curve:                              {result.loss_plot}")
    typer.echo(
        f"  checkpoints:                             {', '.join(str(p) for p in sorted(out.glob('checkpoint-*')))}"
    )
    typer.echo(f"done in {time.time() - start:.0f} s — try: glmtune chat {base} --adapter {out}")
