"""The training recipe, top to bottom: config -> model -> method -> data -> Trainer -> artefacts.

Every ``TrainingArguments`` feature works unchanged (logging, ``report_to``, eval, save strategies, DDP via
``torchrun``/``accelerate launch``, DeepSpeed/FSDP configs): glmtune only chooses the model, the data and the
collator, and saves checkpoints atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from glmtune.config.schema import TrainConfig
from glmtune.errors import GlmtuneError
from glmtune.model.adapters import base_record
from glmtune.train import distributed, methods, resume
from glmtune.train.plot import plot_loss
from glmtune.train.progress import ProgressLog

log = logging.getLogger("glmtune.train")


@dataclass
class TrainResult:
    output_dir: Path
    final_dir: Path
    train_loss: float | None
    first_loss: float | None
    last_loss: float | None
    loss_plot: Path | None
    trainer_state: Path
    metrics: dict[str, Any]


def fingerprint(cfg: TrainConfig) -> dict[str, Any]:
    """What makes two runs "the same run" for resuming into one output directory."""
    summary = {
        "model": cfg.model.path,
        "method": cfg.method.name,
        "data": cfg.data.train,
        "mode": cfg.data.mode,
        "max_length": cfg.data.max_length,
        "lora_r": cfg.method.lora_r if cfg.method.uses_lora else None,
        "pre_seq_len": cfg.method.pre_seq_len if cfg.method.uses_prefix else None,
    }
    if cfg.data.mask_history:
        summary["mask_history"] = True
    digest = hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()[:16]
    return {"fingerprint": digest, "summary": summary}


def preflight(cfg: TrainConfig) -> None:
    """The model and every data file exist (checked before the output directory is judged, so that a wrong path
    is what the user hears about)."""
    model = Path(cfg.model.path)
    if not model.is_dir():
        raise GlmtuneError(f"model.path {model}: no such directory")
    if not (model / "config.json").is_file():
        raise GlmtuneError(f"model.path {model}: holds no config.json (not a checkpoint directory)")
    for split in ("train", "eval", "test"):
        for path in getattr(cfg.data, split):
            if not Path(path).exists():
                raise GlmtuneError(f"data.{split} {path}: no such file or directory")


def train(cfg: TrainConfig, notify: Callable[[str], None] | None = None) -> TrainResult:
    """Run one fine-tuning job; returns where everything went. ``notify`` hears what the user should know
    (resume point, data truncation, interruption); default: the ``glmtune.train`` log."""
    from transformers import GenerationConfig, set_seed

    import glmtune
    from glmtune.train.datasets import build_datasets
    from glmtune.train.trainer import GlmTrainer

    say = notify or log.info
    args = cfg.training
    output_dir = Path(args.output_dir)
    preflight(cfg)
    resume_from = resume.resolve_resume(args.resume, output_dir)
    run = fingerprint(cfg)
    resume.check_output_dir(output_dir, run, resuming=resume_from is not None, overwrite=args.overwrite_output_dir)
    if resume_from:
        say(f"resuming from {resume_from} (step {resume.step_of(Path(resume_from))})")
    set_seed(args.seed)
    distributed.join_deepspeed_comm(args)

    # ---- model
    quant = methods.quantization_config(cfg.model, cfg.method.name)
    dtype = cfg.model.dtype
    if dtype == "auto" and not torch.cuda.is_available():
        dtype = "fp32"  # CPU training in fp16 is not supported by most kernels
    loaded = glmtune.load(
        cfg.model.path,
        dtype=dtype,
        attn_implementation=cfg.model.attn_implementation,
        family=cfg.model.family,
        quantization_config=quant,
    )
    tokenizer, family = loaded.tokenizer, loaded.family
    if cfg.data.pack and family.architecture == "chatglm-v1":
        raise GlmtuneError(
            "data.pack: ChatGLM-6B's 2D positions and masks cannot express packed rows; "
            "use training.train_sampling_strategy group_by_length instead"
        )
    model = loaded.model
    model.config.use_cache = False
    model = methods.apply_method(model, family, cfg.method, bool(args.activation_checkpointing))
    router_loss = None
    if getattr(family, "moe", False):
        from glmtune.train.router_loss import RouterAuxLoss

        router_loss = RouterAuxLoss(model, cfg.method.router_aux_loss_coef)
    if quant is None:
        methods.upcast_trainable(model)
    trainable, total = methods.count_parameters(model)
    if trainable == 0:
        raise GlmtuneError(f"method {cfg.method.name}: no trainable parameters")
    log.info("trainable parameters: %d / %d (%.2f%%)", trainable, total, 100 * trainable / total)
    if args.activation_checkpointing and not args.activation_checkpointing_kwargs:
        args.activation_checkpointing_kwargs = {"use_reentrant": False}
    if not torch.cuda.is_available():
        args.dataloader_pin_memory = False
    if args.label_names is None:
        # the Trainer finds label names in forward()'s signature; P-Tuning's forward takes **kwargs, and without
        # them it computes no eval loss
        args.label_names = ["labels"]

    # ---- data
    data = build_datasets(cfg, tokenizer, family)
    for line in data.summary():
        say(line)
    stop_ids = family.stop_token_ids(tokenizer)
    gen = dict(cfg.generation)
    if args.predict_with_generate:
        gen.setdefault("max_new_tokens", 128)
        gen.setdefault("do_sample", False)
        args.generation_config = GenerationConfig(**gen, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id)
    if data.eval is None and args.eval_strategy != "no":
        args.eval_strategy = "no"

    # ---- trainer
    trainer = GlmTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        data_collator=data.collator,
        processing_class=tokenizer,
        compute_metrics=_metrics_fn(tokenizer) if args.predict_with_generate else None,
        stop_token_ids=stop_ids,
        pad_token_id=tokenizer.pad_token_id,
        save_fn=_saver(cfg, family),
        adapter_record=base_record(Path(cfg.model.path), family) if cfg.method.name not in ("full", "freeze") else None,
        callbacks=[ProgressLog(output_dir)],
        router_loss=router_loss,
    )
    if trainer.is_world_process_zero():
        resume.write_run_file(output_dir, run)
    try:
        result = trainer.train(resume_from_checkpoint=resume_from)
    except KeyboardInterrupt:
        done = resume.complete_checkpoints(output_dir)
        where = (
            f"last complete checkpoint: {done[-1]} (resume: auto, or the official form's 'yes', continues from it)"
            if done
            else "no complete checkpoint yet (training.save_steps sets how often one is written)"
        )
        say(f"interrupted at step {trainer.state.global_step}; {where}")
        raise
    trainer.save_model(str(output_dir))
    trainer.save_state()
    metrics: dict[str, Any] = dict(result.metrics)
    evals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    if evals:
        metrics["eval_loss"] = evals[-1]
    if data.test is not None:
        metrics.update(run_test(trainer, data.test, tokenizer, output_dir, say))
    state_file = output_dir / "trainer_state.json"
    plot = (
        plot_loss(state_file, output_dir / "loss.png") if args.plot_loss and trainer.is_world_process_zero() else None
    )
    if trainer.is_world_process_zero():
        (output_dir / "glmtune_config.json").write_text(
            json.dumps(_config_dict(cfg), indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return TrainResult(
        output_dir=output_dir,
        final_dir=output_dir,
        train_loss=metrics.get("train_loss"),
        first_loss=losses[0] if losses else None,
        last_loss=losses[-1] if losses else None,
        loss_plot=plot,
        trainer_state=state_file,
        metrics=metrics,
    )


def run_test(trainer: Any, test: Any, tokenizer: Any, output_dir: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """The test split after training (the official script's last step): metrics to ``test_results.json``, and with
    ``predict_with_generate`` every generated reply with its reference to ``test_predictions.jsonl``."""
    out = trainer.predict(test, metric_key_prefix="test")
    metrics = {k: float(v) if isinstance(v, (int, float)) else v for k, v in out.metrics.items()}
    if not trainer.is_world_process_zero():
        return metrics
    from glmtune.io import atomic_write_text

    atomic_write_text(output_dir / "test_results.json", json.dumps(metrics, indent=2) + "\n")
    said = ", ".join(f"{k[5:]} {v:.4f}" for k, v in metrics.items() if isinstance(v, float) and "runtime" not in k)
    say(f"test: {said} -> {output_dir / 'test_results.json'}")
    if trainer.args.predict_with_generate and out.predictions is not None and out.label_ids is not None:
        pad = tokenizer.pad_token_id

        def text(row: Any) -> str:
            return tokenizer.decode([int(t) for t in row if t != pad and t >= 0]).strip()

        lines = [
            json.dumps({"prediction": text(p), "reference": text(r)}, ensure_ascii=False)
            for p, r in zip(out.predictions, out.label_ids, strict=True)
        ]
        atomic_write_text(output_dir / "test_predictions.jsonl", "".join(line + "\n" for line in lines))
        say(f"test: {len(lines)} predictions -> {output_dir / 'test_predictions.jsonl'}")
    return metrics


def _config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return {
        "model": asdict(cfg.model),
        "data": asdict(cfg.data),
        "method": asdict(cfg.method),
        "generation": cfg.generation,
        "training": cfg.training.to_dict(),
    }


def _metrics_fn(tokenizer: Any):
    from glmtune.evaluate import compute_metrics

    def compute(eval_pred: Any) -> dict[str, float]:
        preds, refs = eval_pred.predictions, eval_pred.label_ids
        pad = tokenizer.pad_token_id
        decode = lambda rows: [tokenizer.decode([t for t in r if t != pad and t >= 0]).strip() for r in rows]  # noqa: E731
        scores = compute_metrics(decode(preds), decode(refs), variant="finetune-demo")
        return {k: float(v) for k, v in scores.items()}

    return compute


def _saver(cfg: TrainConfig, family: Any):
    """How a checkpoint stores the model: peft adapters, the official prefix format, or the full native model."""
    if not cfg.method.uses_prefix:
        return None

    def save(model: Any, output_dir: str) -> None:
        from glmtune.model.export import save_prefix_checkpoint

        save_prefix_checkpoint(model, Path(output_dir), family)

    return save
