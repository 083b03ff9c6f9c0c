"""``GlmTrainer``: transformers' ``Seq2SeqTrainer`` with three changes, nothing else.

1. Checkpoints are written to ``output_dir/.staging/checkpoint-N`` and renamed into place once complete (every
   rank has written its part), so a kill during a save never leaves a broken latest checkpoint (``--resume auto``
   then picks the last complete one). No public hook can redirect a checkpoint, so this overrides private
   ``Trainer`` methods: every one of them is pinned in :mod:`glmtune.train.trainer_pins` (a test fails when
   transformers changes them).
2. Under FSDP, checkpoints and the output hold a loadable adapter/model as well as the shards, and CPU processes
   over gloo run FSDP too (see :mod:`glmtune.train.distributed`).
3. With ``predict_with_generate``, each eval sample's reply (its last loss-bearing span) is generated from the
   prompt before it, left-padded, and scored with the official metrics; the eval loss is computed as usual.
3. MoE models: training logs carry ``router_aux_loss`` (:mod:`glmtune.train.router_loss`), through ``log``.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import torch
from transformers import Seq2SeqTrainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from glmtune.train import distributed

STAGING = ".staging"


class GlmTrainer(Seq2SeqTrainer):
    def __init__(
        self,
        *args: Any,
        stop_token_ids: list[int] | None = None,
        pad_token_id: int = 0,
        save_fn: Any = None,
        adapter_record: dict[str, Any] | None = None,
        router_loss: Any = None,
        **kwargs: Any,
    ):
        self._staging_dir: str | None = None  # set while a checkpoint is written (see _save_checkpoint)
        super().__init__(*args, **kwargs)
        self.stop_token_ids = stop_token_ids or []
        self.pad_token_id = pad_token_id
        self.save_fn = save_fn  # (model, directory) -> None for methods whose checkpoints are not save_pretrained
        self.adapter_record = adapter_record  # written as glmtune_adapter.json next to every adapter checkpoint
        self.router_loss = router_loss  # MoE: a RouterAuxLoss whose mean joins each training log

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if distributed.promote_cpu_fsdp(self.accelerator, self.args.fsdp_plugin_args):
            self.is_fsdp_enabled = True

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Training logs of MoE models also carry ``router_aux_loss`` (the mean since the last log)."""
        if self.router_loss is not None and "loss" in logs:
            value = self.router_loss.pop_mean()
            if value is not None:
                logs["router_aux_loss"] = round(value, 4)
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------- custom model files
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if distributed.sharded_only(self):  # transformers would write no model files: gather them (all ranks)
            self._save(output_dir or self.args.output_dir, state_dict=distributed.full_state_dict(self))
            return
        super().save_model(output_dir, _internal_call)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        from peft import PeftModel

        model = self.accelerator.unwrap_model(self.model)
        is_peft = isinstance(model, PeftModel)  # FSDP2 renames the class (FSDPPeftModel...)
        if self.save_fn is None and not is_peft:
            return super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return None
        os.makedirs(output_dir, exist_ok=True)
        if is_peft:
            # peft compares the vocab with GlmConfig.from_pretrained(original dir), which reads the original keys
            # wrongly and would copy the embeddings into every adapter: they are never resized here
            model.save_pretrained(output_dir, state_dict=state_dict, save_embedding_layers=False)
        else:
            self.save_fn(model, output_dir)
        if self.adapter_record is not None:
            from glmtune.model.adapters import BASE_FILE

            with open(os.path.join(output_dir, BASE_FILE), "w", encoding="utf-8") as f:
                json.dump(self.adapter_record, f, indent=2)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))
        return None

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        if self.save_fn is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        from pathlib import Path

        from glmtune.model.export import load_prefix_checkpoint

        load_prefix_checkpoint(model or self.accelerator.unwrap_model(self.model), Path(resume_from_checkpoint))
        return None

    # ------------------------------------------------------------------------------------- atomic checkpoints
    def _get_output_dir(self, trial: Any) -> str:
        return self._staging_dir if self._staging_dir is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        run_dir = self._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_root = os.path.join(run_dir, STAGING)
        self._staging_dir = staging_root
        limit = self.args.save_total_limit
        self.args.save_total_limit = None  # rotation happens below, in the real directory
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_dir = None
            self.args.save_total_limit = limit
        distributed_run = self.args.world_size > 1 and torch.distributed.is_initialized()
        if distributed_run:  # every rank has written its files (rng state, shards) before the rename
            torch.distributed.barrier()
        if self.args.should_save:
            staged, final = os.path.join(staging_root, name), os.path.join(run_dir, name)
            if os.path.exists(final):
                shutil.rmtree(final)
            os.replace(staged, final)
            shutil.rmtree(staging_root, ignore_errors=True)
            if self.state.best_model_checkpoint and STAGING in self.state.best_model_checkpoint:
                self.state.best_model_checkpoint = self.state.best_model_checkpoint.replace(os.sep + STAGING, "")
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=False,
            )
        if distributed_run:
            torch.distributed.barrier()

    # ------------------------------------------------------------------------------------- generation in eval
    def prediction_step(
        self,
        model: Any,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
        **gen_kwargs: Any,
    ):
        if not self.args.predict_with_generate or prediction_loss_only or "labels" not in inputs:
            return super(Seq2SeqTrainer, self).prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        loss, _, _ = super(Seq2SeqTrainer, self).prediction_step(model, inputs, True, ignore_keys)
        mask = inputs.get("attention_mask")
        prompts, references = split_last_reply(inputs["input_ids"], inputs["labels"], self.stop_token_ids, mask)
        generated = self._generate(prompts, gen_kwargs)
        return loss, pad_rows(generated, self.pad_token_id), pad_rows(references, self.pad_token_id)

    def _generate(self, prompts: list[list[int]], gen_kwargs: dict[str, Any]) -> list[list[int]]:
        model = self.accelerator.unwrap_model(self.model)
        width = max(len(p) for p in prompts)
        device = next(model.parameters()).device
        ids = torch.tensor([[self.pad_token_id] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        kwargs = {**getattr(self, "_gen_kwargs", {}), **gen_kwargs}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs.setdefault("eos_token_id", self.stop_token_ids or None)
        kwargs.setdefault("pad_token_id", self.pad_token_id)
        if "max_new_tokens" not in kwargs and "max_length" not in kwargs:
            kwargs["max_new_tokens"] = 128
        was_training = model.training
        model.eval()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        model.train(was_training)
        rows = []
        for row in out[:, width:].tolist():
            kept = []
            for t in row:
                if t in self.stop_token_ids or t == self.pad_token_id:
                    break
                kept.append(t)
            rows.append(kept)
        return rows


def split_last_reply(
    input_ids: torch.Tensor, labels: torch.Tensor, stop_ids: list[int], attention_mask: torch.Tensor | None = None
) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, reply ids) per row: the reply is the last run of labelled tokens, without its stop token."""
    masks = attention_mask.tolist() if attention_mask is not None else [[1] * input_ids.shape[1]] * len(input_ids)
    prompts, replies = [], []
    for row_ids, row_labels, row_mask in zip(input_ids.tolist(), labels.tolist(), masks, strict=False):
        kept = [(t, lab) for t, lab, m in zip(row_ids, row_labels, row_mask, strict=False) if m]
        ids = [t for t, _ in kept]
        lab = [v for _, v in kept]
        positions = [i for i, v in enumerate(lab) if v != -100]
        if not positions:
            prompts.append(ids)
            replies.append([])
            continue
        end = start = positions[-1]
        while start > 0 and lab[start - 1] != -100:
            start -= 1
        reply = ids[start : end + 1]
        if reply and reply[-1] in stop_ids:
            reply = reply[:-1]
        prompts.append(ids[:start])
        replies.append(reply)
    return prompts, replies


def pad_rows(rows: list[list[int]], pad: int) -> torch.Tensor:
    width = max((len(r) for r in rows), default=1) or 1
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows])
