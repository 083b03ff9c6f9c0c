"""Per-row sampling for a batch whose rows have different parameters (every glmtune command samples here).

Every row keeps its own temperature, top-p, top-k, penalties and ``torch.Generator``, so a request's output
depends only on its own parameters (and seed), not on which other requests share its batch, nor on whether it
came from ``glmtune chat``, ``predict`` or the server. A row may carry a :class:`Constraint` (the server's JSON
mode) that picks its tokens once active.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from transformers import LogitsProcessor

from glmtune.infer.params import GenerationParams


class Constraint(Protocol):
    """Decoding restricted to a language (``glmtune.serve.json_mode.JsonConstraint``)."""

    def active(self, generated: list[int]) -> bool:
        """Whether the constraint picks the next token after ``generated``."""
        ...

    def pick(self, logits: torch.Tensor, generated: list[int], sample: bool, temperature: float, gen: Any) -> int:
        """The next token from one row's ``logits`` (drawn with ``gen`` when ``sample``)."""
        ...


@dataclass
class RowSampling:
    """How one row picks its next token."""

    params: GenerationParams
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    starts: tuple[tuple[int, ...], ...] = ()  # the reply must begin with one of these (a forced tool call)
    after: int | None = None  # ... or, when set, what follows this token (the end of the reasoning) must
    json: Constraint | None = None  # JSON mode: once its prefix is written, only JSON may follow
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator()
        seed = self.params.seed if self.params.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
        self.generator.manual_seed(seed)

    @property
    def greedy(self) -> bool:
        return not self.params.do_sample or self.params.temperature <= 0

    @property
    def penalised(self) -> bool:
        return bool(self.presence_penalty or self.frequency_penalty or self.params.repetition_penalty != 1.0)

    def allowed(self, generated: list[int]) -> list[int] | None:
        """The tokens that may come next while the reply is still inside one of :attr:`starts` (else None)."""
        if self.after is not None:
            if self.after not in generated:
                return None  # still reasoning: free
            generated = generated[generated.index(self.after) + 1 :]
        n = len(generated)
        if not self.starts or n >= max(map(len, self.starts)):
            return None
        done = tuple(generated)
        if done in self.starts:
            return None
        nxt = {s[n] for s in self.starts if len(s) > n and s[:n] == done}
        return sorted(nxt) or None


def _penalise(logits: torch.Tensor, row: RowSampling, prompt: list[int], generated: list[int]) -> torch.Tensor:
    """HF-style repetition penalty (prompt + generated) and OpenAI presence/frequency penalties (generated)."""
    if row.params.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(prompt) | set(generated)), dtype=torch.long, device=logits.device)
        picked = logits[seen]
        p = row.params.repetition_penalty
        logits[seen] = torch.where(picked < 0, picked * p, picked / p)
    if generated and (row.presence_penalty or row.frequency_penalty):
        counts = torch.bincount(torch.tensor(generated, device=logits.device), minlength=logits.shape[-1])
        counts = counts[: logits.shape[-1]].to(logits.dtype)
        logits -= row.frequency_penalty * counts + row.presence_penalty * (counts > 0).to(logits.dtype)
    return logits


def _from_sorted(
    vals: torch.Tensor, idx: torch.Tensor, top_p: torch.Tensor, top_k: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """Draws from the top-k / nucleus part of rows already sorted by probability (``vals``, vocab ids ``idx``)."""
    cum = vals.cumsum(-1)
    ranks = torch.arange(vals.shape[-1], device=vals.device)[None]
    keep = ((cum - vals) < top_p[:, None]) & ((top_k[:, None] <= 0) | (ranks < top_k[:, None]))
    keep[:, 0] = True
    cdf = (vals * keep).cumsum(-1)
    pos = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).clamp(max=vals.shape[-1] - 1)
    return idx.gather(-1, pos).squeeze(-1)


def _nucleus_mask(
    probs: torch.Tensor, top_p: torch.Tensor, bins_per_octave: int = 64, octaves: int = 40
) -> torch.Tensor:
    """Which tokens form each row's nucleus, without sorting the vocabulary.

    Tokens go into log-spaced probability bins (one pass); the cumulative mass of the bins, most likely first,
    shows the bin where ``top_p`` is crossed: bins before it are in, and only that one bin is sorted to find
    the exact edge. Same set as sorting everything (up to ties).
    """
    n_bins = bins_per_octave * octaves
    top = probs.max(dim=-1, keepdim=True).values
    ratio = (probs / top).clamp(min=2.0**-octaves)
    bins = (-torch.log2(ratio) * bins_per_octave).long().clamp(max=n_bins - 1)
    mass = torch.zeros(probs.shape[0], n_bins, dtype=probs.dtype, device=probs.device).scatter_add_(1, bins, probs)
    cum = mass.cumsum(-1)
    edge = (cum < top_p[:, None]).sum(-1).clamp(max=n_bins - 1)
    before = torch.where(edge > 0, cum.gather(1, (edge - 1).clamp(min=0)[:, None]).squeeze(-1), 0.0)
    keep = bins < edge[:, None]
    rows, cols = (bins == edge[:, None]).nonzero(as_tuple=True)  # the edge bins' tokens, sorted in one go
    vals = probs[rows, cols]
    order = (rows.double() * 2 - vals.double()).argsort()  # by row, then most likely first
    rows, cols, vals = rows[order], cols[order], vals[order]
    cum = vals.cumsum(0)
    counts = torch.bincount(rows, minlength=probs.shape[0])
    start = counts.cumsum(0) - counts  # index of each row's first edge token
    offset = torch.where(start > 0, cum[(start - 1).clamp(min=0)], torch.zeros_like(before))
    inside = (before[rows] + cum - offset[rows] - vals) < top_p[rows]
    keep[rows[inside], cols[inside]] = True
    keep |= probs >= top
    return keep


def _pick(probs: torch.Tensor, top_p: torch.Tensor, top_k: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draws (uniforms ``u``) from top-k / nucleus-filtered ``probs`` (rows x vocab).

    The nucleus is the smallest set of most likely tokens holding ``top_p`` of the mass (the most likely token
    always stays). Sorting a whole vocabulary every step is slow on a CPU (150k tokens: ~10 ms a row), so top-k
    rows and peaked rows (nucleus within the top 64, the usual case for a trained model) use ``topk``, wide
    nuclei :func:`_nucleus_mask`, and ``top_p = 1`` needs no ordering at all.
    """
    vocab = probs.shape[-1]
    out = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    todo = torch.ones(probs.shape[0], dtype=torch.bool, device=probs.device)
    k = int(top_k.max()) if bool((top_k > 0).any()) else 0
    k = min(vocab, max(k, 64))
    # rows that a top-k may settle: a top-k row, or one whose 64 most likely tokens can hold top_p
    limited = (top_k > 0) | ((top_p < 1.0) & (probs.max(dim=-1).values * k >= top_p))
    if bool(limited.any()):
        rows = limited.nonzero().squeeze(-1)
        vals, idx = probs[rows].topk(k, dim=-1)
        inside = (vals.sum(-1) >= top_p[rows]) | (top_k[rows] > 0) | (k >= vocab)
        done = rows[inside]
        out[done] = _from_sorted(vals[inside], idx[inside], top_p[done], top_k[done], u[done])
        todo[done] = False
    rest = todo.nonzero().squeeze(-1)
    if rest.numel():  # a wide nucleus (a flat distribution), or plain sampling (top_p = 1)
        p = probs[rest]
        wide = top_p[rest] < 1.0
        if bool(wide.any()):
            p = p.clone()
            p[wide] = p[wide] * _nucleus_mask(p[wide], top_p[rest][wide])
        cdf = p.cumsum(-1)
        pos = torch.searchsorted(cdf, (u[rest] * cdf[:, -1])[:, None]).clamp(max=vocab - 1)
        out[rest] = pos.squeeze(-1)
    return out


def sample(
    logits: torch.Tensor,
    rows: list[RowSampling],
    prompts: list[list[int]],
    generated: list[list[int]],
    invalid_token: int,
) -> list[int]:
    """The next token of every row of ``logits`` (rows x vocab)."""
    logits = logits.float()
    bad = ~torch.isfinite(logits).all(dim=-1)
    if bool(bad.any()):  # the official InvalidScoreLogitsProcessor, per row
        logits[bad] = 0.0
        logits[bad, invalid_token] = 5e4
    for i, row in enumerate(rows):
        if row.penalised:
            logits[i] = _penalise(logits[i], row, prompts[i], generated[i])
        allowed = row.allowed(generated[i])
        if allowed is not None:
            keep = torch.tensor(allowed, device=logits.device)
            masked = torch.full_like(logits[i], float("-inf"))
            masked[keep] = logits[i, keep]
            logits[i] = masked
    out = logits.argmax(dim=-1).tolist()
    constrained = set()
    for i, row in enumerate(rows):
        if row.json is not None and row.allowed(generated[i]) is None and row.json.active(generated[i]):
            out[i] = row.json.pick(logits[i], generated[i], not row.greedy, row.params.temperature, row.generator)
            constrained.add(i)
    hot = [i for i, row in enumerate(rows) if not row.greedy and i not in constrained]
    if hot:
        dev = logits.device
        temps = torch.tensor([rows[i].params.temperature for i in hot], device=dev)
        probs = (logits[hot] / temps[:, None]).softmax(-1)
        top_p = torch.tensor([rows[i].params.top_p for i in hot], device=dev, dtype=probs.dtype)
        top_k = torch.tensor([rows[i].params.top_k for i in hot], device=dev)
        u = torch.stack([torch.rand((), generator=rows[i].generator) for i in hot]).to(dev, probs.dtype)
        for i, token in zip(hot, _pick(probs, top_p, top_k, u).tolist(), strict=True):
            out[i] = token
    return out


class InvalidScoreLogitsProcessor(LogitsProcessor):
    """The official guard for transformers' ``generate`` (the official chat helpers in
    :mod:`glmtune.infer.official_v1`): NaN/inf scores anywhere in the batch become a certain pick of one harmless
    token in every row, as the official code does (:func:`sample` applies the same guard per row)."""

    def __init__(self, token_id: int) -> None:
        self.token_id = token_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if torch.isnan(scores).any() or torch.isinf(scores).any():
            scores.zero_()
            scores[..., self.token_id] = 5e4
        return scores
