"""ChatGLM-6B attention: eager against the official ``attention_fn`` order, SDPA within its stated tolerance.

Official (``modeling_chatglm.py`` of THUDM/chatglm-6b): ``q / (sqrt(d) * (layer_id + 1))``, scores ``q @ k^T``,
``masked_fill(mask, -10000.0)``, ``* (layer_id + 1)``, softmax in fp32, ``@ v``; a row whose keys are all masked
thus averages every value. The fidelity tests hold eager to 1e-4 of the official logits and SDPA (a fused kernel
summing in another order) to 1e-5 of the largest logit.
"""

from __future__ import annotations

import math

import pytest
import torch

from glmtune.model.chatglm_v1.layers import eager_attention, sdpa_attention


def official_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, layer_id: int):
    coeff = float(layer_id + 1)
    scores = torch.matmul(q / (math.sqrt(q.shape[-1]) * coeff), k.transpose(-1, -2))
    scores = scores.masked_fill(mask, -10000.0) * coeff
    return torch.matmul(torch.softmax(scores.float(), dim=-1), v)


def _inputs(seed: int, dead_row: bool) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 4, 9, 16, generator=g) * 3 for _ in range(3))
    mask = ~torch.ones(9, 9, dtype=torch.bool).tril().expand(2, 1, 9, 9).clone()
    mask[1, :, :, :3] = True  # left padding: three hidden key columns
    if dead_row:
        mask[1, :, 0, :] = True  # a query row that sees nothing
    return q, k, v, mask


@pytest.mark.parametrize("layer_id", [0, 1, 27])
@pytest.mark.parametrize("dead_row", [False, True])
def test_eager_is_the_official_order_and_sdpa_is_close(layer_id: int, dead_row: bool) -> None:
    q, k, v, mask = _inputs(layer_id, dead_row)
    want = official_attention(q, k, v, mask, layer_id)
    eager, _ = eager_attention(q, k, v, mask, layer_id)
    assert torch.equal(eager, want)
    sdpa = sdpa_attention(q, k, v, mask)
    assert (sdpa - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())
