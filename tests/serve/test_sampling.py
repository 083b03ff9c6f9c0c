"""Per-row sampling: the nucleus without a full sort is the sorted nucleus; draws follow the filtered law."""

from __future__ import annotations

import pytest
import torch

from glmtune.infer.params import GenerationParams
from glmtune.infer.sampling import RowSampling, _nucleus_mask, _pick, sample


def sorted_nucleus(probs: torch.Tensor, top_p: torch.Tensor, top_k: torch.Tensor | None = None) -> torch.Tensor:
    vals, order = probs.sort(dim=-1, descending=True)
    keep = (vals.cumsum(-1) - vals) < top_p[:, None]
    if top_k is not None:
        ranks = torch.arange(probs.shape[-1])[None]
        keep &= (top_k[:, None] <= 0) | (ranks < top_k[:, None])
    keep[:, 0] = True
    return torch.zeros_like(keep).scatter(1, order, keep)


@pytest.mark.parametrize("vocab, scale", [(300, 3.0), (300, 0.2), (4016, 0.2), (40000, 0.3), (40000, 4.0)])
def test_nucleus_mask_equals_sorting(vocab: int, scale: float) -> None:
    gen = torch.Generator().manual_seed(vocab)
    probs = (torch.randn(8, vocab, generator=gen) * scale).softmax(-1)
    top_p = torch.tensor([0.1, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.0])
    assert torch.equal(_nucleus_mask(probs, top_p), sorted_nucleus(probs, top_p))


@pytest.mark.parametrize("scale", [0.2, 3.0])
def test_draws_follow_the_filtered_distribution(scale: float) -> None:
    gen = torch.Generator().manual_seed(1)
    probs = (torch.randn(6, 200, generator=gen) * scale).softmax(-1)
    top_p = torch.tensor([0.5, 1.0, 0.9, 0.0, 0.8, 0.95])
    top_k = torch.tensor([0, 0, 5, 0, 0, 20])
    n = 20000
    u = torch.rand(n * 6, generator=gen)
    draws = _pick(probs.repeat(n, 1), top_p.repeat(n), top_k.repeat(n), u).view(n, 6)
    keep = sorted_nucleus(probs, top_p, top_k)
    expected = probs * keep / (probs * keep).sum(-1, keepdim=True)
    for row in range(6):
        freq = torch.bincount(draws[:, row], minlength=200).float() / n
        assert freq[~keep[row]].sum() == 0  # never outside the nucleus / top-k
        assert (freq - expected[row]).abs().max() < 0.02


def test_seeds_and_greedy_rows() -> None:
    logits = torch.randn(3, 500)
    rows = [
        RowSampling(GenerationParams(temperature=1.0, top_p=0.9, seed=5)),
        RowSampling(GenerationParams(do_sample=False)),
        RowSampling(GenerationParams(temperature=0.0, seed=1)),
    ]
    alone = sample(logits[:1].clone(), rows[:1], [[1]], [[]], 0)[0]
    again = RowSampling(GenerationParams(temperature=1.0, top_p=0.9, seed=5))
    out = sample(logits.clone(), [again, *rows[1:]], [[1]] * 3, [[]] * 3, 0)
    assert out[0] == alone  # the same seed draws the same token, alone or in a batch
    assert out[1:] == [int(logits[1].argmax()), int(logits[2].argmax())]


def test_invalid_scores_and_penalties() -> None:
    logits = torch.zeros(2, 10)
    logits[0, 3] = float("nan")
    logits[1, 4], logits[1, 5] = 5.0, 1.0
    rows = [
        RowSampling(GenerationParams(do_sample=False)),
        RowSampling(GenerationParams(do_sample=False, repetition_penalty=100.0)),
    ]
    out = sample(logits, rows, [[0], [4]], [[], []], invalid_token=7)
    assert out[0] == 7  # NaN row -> the family's harmless token, as the official processor does
    assert out[1] == 5  # the repeated token (5.0 / 100) fell below the next one
    logits = torch.zeros(1, 10)
    logits[0, 2] = 1.0
    row = RowSampling(GenerationParams(do_sample=False), presence_penalty=2.0)
    assert sample(logits, [row], [[0]], [[2]], 0)[0] != 2


def test_forced_starts_constrain_only_the_first_tokens() -> None:
    """A row with ``starts`` must begin with one of them whatever the logits say (greedy or sampled); between
    starts that share tokens the logits choose; once one is complete the row is free."""
    vocab = 50
    starts = ((7, 8, 9), (7, 3), (12,))
    for params in (GenerationParams(do_sample=False), GenerationParams(do_sample=True, temperature=1.0, seed=3)):
        row = RowSampling(params, starts=starts)
        logits = torch.zeros(1, vocab)
        logits[0, 40] = 100.0  # what the model wants
        logits[0, 7] = 1.0
        logits[0, 3] = 2.0
        generated: list[int] = []
        for _ in range(3):
            generated += sample(logits.clone(), [row], [[1]], [generated], invalid_token=0)
        assert generated == [7, 3, 40]  # 7 (over 12), then 3 (over 8: the logits choose), then free
    free = RowSampling(GenerationParams(do_sample=False))
    assert sample(torch.eye(vocab)[None, 40], [free], [[1]], [[]], invalid_token=0) == [40]
    assert RowSampling(GenerationParams(), starts=((5,), (5, 6))).allowed([5]) is None  # (5,) is complete
