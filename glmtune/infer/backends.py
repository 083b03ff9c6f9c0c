"""The two ways the generation core (:class:`~glmtune.infer.decode.Decoder`) runs a model.

:class:`ContinuousBackend`: step-level (continuous) batching for the native GLM forward (ChatGLM2/3, GLM-4, with
LoRA or a P-Tuning prefix): one decode step for all running rows, newly arrived rows prefilled together and
their KV cache merged into the running, left-padded one. :class:`GenerateBackend`: dynamic batching for models
with their own ``generate`` (ChatGLM-6B): the waiting requests are generated together, rows sampled and stopped
one by one through a logits processor and a stopping criterion. GLM-5 (its sparse-attention indexer keeps a key
cache of its own) takes that way too (``Family.continuous_batching``). A backend sees its scheduler only through
the :class:`~glmtune.infer.rows.Scheduler` protocol.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache, LogitsProcessor, StoppingCriteria

from glmtune.infer.rows import Row, Scheduler


class ContinuousBackend:
    """Step-level batching with a merged, left-padded KV cache (native GLM forward)."""

    def __init__(self, sched: Scheduler) -> None:
        self.b = sched
        self.reset()

    def reset(self) -> None:
        self.rows: list[Row] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None
        self.last: torch.Tensor | None = None

    def accepts(self, new: list[Row]) -> bool:
        return True

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        out = self.b.engine.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1]

    def step(self, new: list[Row]) -> None:
        device = self.b.engine.device
        if self.rows:
            pos = self.mask.sum(-1, keepdim=True)
            self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=-1)
            tokens = self.b.sample(self._forward(self.last[:, None], self.mask, pos, self.cache), self.rows)
            self.last = torch.tensor(tokens, device=device)
            for job, token in zip(self.rows, tokens, strict=True):
                self.b.advance(job, token)
        if new:
            batch = self.b.engine.tokenizer.pad(
                {"input_ids": [j.prompt for j in new]}, padding="longest", return_tensors="pt"
            )
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            cache = DynamicCache()
            logits = self._forward(ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), cache)
            tokens = self.b.sample(logits, new)
            for job, token in zip(new, tokens, strict=True):
                self.b.advance(job, token)
            self._merge(new, cache, mask, torch.tensor(tokens, device=device))
        self._drop_finished()

    def _merge(self, jobs: list[Row], cache: DynamicCache, mask: torch.Tensor, last: torch.Tensor) -> None:
        if not self.rows:
            self.rows, self.cache, self.mask, self.last = list(jobs), cache, mask, last
            return
        width = max(self.mask.shape[1], mask.shape[1])

        def left(t: torch.Tensor, dim_from_end: int) -> torch.Tensor:
            n = width - t.shape[-dim_from_end]
            return t if n == 0 else F.pad(t, (0, 0) * (dim_from_end - 1) + (n, 0))

        layers = [
            (torch.cat([left(a.keys, 2), left(b.keys, 2)]), torch.cat([left(a.values, 2), left(b.values, 2)]))
            for a, b in zip(self.cache.layers, cache.layers, strict=True)
        ]
        self.cache = DynamicCache(ddp_cache_data=layers)
        self.mask = torch.cat([left(self.mask, 1), left(mask, 1)])
        self.last = torch.cat([self.last, last])
        self.rows += jobs

    def _drop_finished(self) -> None:
        keep = [i for i, job in enumerate(self.rows) if not job.finished]
        if not keep:
            self.reset()
            return
        if len(keep) < len(self.rows):
            idx = torch.tensor(keep, device=self.mask.device)
            self.cache.batch_select_indices(idx)
            self.mask, self.last = self.mask[idx], self.last[idx]
            self.rows = [self.rows[i] for i in keep]
            lead = int((self.mask.sum(0) > 0).nonzero()[0])  # columns that are padding in every row
            if lead:
                self.mask = self.mask[:, lead:]
                for layer in self.cache.layers:
                    layer.keys, layer.values = layer.keys[..., lead:, :], layer.values[..., lead:, :]


class GenerateBackend:
    """Dynamic batching: the waiting requests are generated together by ``model.generate`` (ChatGLM-6B)."""

    def __init__(self, sched: Scheduler) -> None:
        self.b = sched
        self.rows: list[Row] = []

    def reset(self) -> None:
        self.rows = []

    def accepts(self, new: list[Row]) -> bool:
        return not self.rows

    def step(self, new: list[Row]) -> None:
        if not new:
            return
        engine, b = self.b.engine, self.b
        self.rows = new
        try:
            batch = engine.tokenizer.pad({"input_ids": [j.prompt for j in new]}, padding="longest", return_tensors="pt")
            width = batch["input_ids"].shape[1]
            engine.model.generate(
                **{k: v.to(engine.device) for k, v in batch.items()},
                max_new_tokens=max(min(j.params.max_new_tokens, b.context - len(j.prompt)) for j in new),
                do_sample=False,
                eos_token_id=engine.stop_ids,
                pad_token_id=engine.tokenizer.pad_token_id,
                logits_processor=[_Forced(b, new)],
                stopping_criteria=[_RowsDone(b, new, width)],
            )
            for job in new:  # generate ended on its own limit before the row's criteria did
                if not job.finished and not job.cancelled:
                    b.complete(job)
        finally:
            self.rows = []


class _Forced(LogitsProcessor):
    """Samples every row with its own parameters and leaves only that token for greedy search to pick."""

    def __init__(self, sched: Scheduler, jobs: list[Row]) -> None:
        self.b, self.jobs = sched, jobs

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        tokens = self.b.sample(scores, self.jobs)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(tokens), device=scores.device), torch.tensor(tokens, device=scores.device)] = 0.0
        return out


class _RowsDone(StoppingCriteria):
    """Feeds each new token to the scheduler and reports, per row, whether that request is finished."""

    def __init__(self, sched: Scheduler, jobs: list[Row], width: int) -> None:
        self.b, self.jobs, self.width = sched, jobs, width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if input_ids.shape[1] > self.width:
            for job, token in zip(self.jobs, input_ids[:, -1].tolist(), strict=True):
                self.b.advance(job, token)
            self.b.flush()
        return torch.tensor([j.finished for j in self.jobs], device=input_ids.device)
