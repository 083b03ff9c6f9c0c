"""P-Tuning v2 on left-padded batches (ChatGLM2, ChatGLM3-32k; both ``prefix_projection`` settings).

Official ChatGLM2/3 ``ChatGLMModel.forward`` with a prefix: ``attention_mask = cat([ones(B, pre_seq_len), mask])``,
then ``get_masks(input_ids, past_key_values, padding_mask=attention_mask)``: ``tril(ones(T, T))`` with
``pre_seq_len`` columns of ones prepended (the past), times the padding mask (pad columns hidden); the PAD-row
correction ``-= padding_mask.unsqueeze(-1) - 1`` runs only without a past, so it is skipped; ``< 0.5`` = masked.
Positions are ``arange(T)`` (pads included). ``official_attention_mask(mask, ptuning=True)`` with those positions
must give the official result: every real token computes what its row computes alone at the same positions.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from glmtune.model.load import load
from glmtune.model.official_mask import official_attention_mask
from glmtune.model.ptuning import add_prefix
from glmtune.model.tiny import make_tiny

PRE = 4


def official_get_masks(padding_mask: torch.Tensor, pre_seq_len: int) -> torch.Tensor:
    """The official mask with a prefix, [B, 1, T, pre_seq_len + T], True = masked (written from the rule above)."""
    b, t = padding_mask.shape
    full = torch.ones(b, t, t).tril()
    full = torch.cat([torch.ones(b, t, pre_seq_len), full], dim=-1)
    full = full * torch.cat([torch.ones(b, pre_seq_len), padding_mask.float()], dim=-1).unsqueeze(1)
    return (full < 0.5).unsqueeze(1)


@pytest.fixture(scope="module", params=["chatglm2", "chatglm3-32k"])
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_tiny(request.param, tmp_path_factory.mktemp(request.param) / "ckpt")


def _model(path: Any, projection: bool) -> Any:
    model = load(path, dtype="fp32").model
    add_prefix(model, PRE, prefix_projection=projection)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.prefix_encoder.parameters():
            p.normal_(0, 0.5)
    return model.eval()


@pytest.mark.parametrize("projection", [False, True])
def test_official_padded_prefix_forward(base: Any, projection: bool) -> None:
    model = _model(base, projection)
    pad = model.config.pad_token_id or 0
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(10, 3000, (7,), generator=g), torch.randint(10, 3000, (4,), generator=g)]
    t = max(len(r) for r in rows)
    ids = torch.stack([torch.cat([torch.full((t - len(r),), pad), r]) for r in rows])
    mask = torch.stack([torch.cat([torch.zeros(t - len(r)), torch.ones(len(r))]) for r in rows]).long()
    ours = official_attention_mask(mask, torch.float32, ptuning=True)
    body = official_get_masks(mask, PRE)
    assert body[..., :PRE].logical_not().all()  # the prefix columns: always visible
    assert torch.equal(ours != 0, body[..., PRE:])
    positions = torch.arange(t).expand_as(ids)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=ours, position_ids=positions).logits
        for b, row in enumerate(rows):
            start = t - len(row)
            alone = model(input_ids=row[None], position_ids=torch.arange(start, t)[None]).logits[0]
            assert (out[b, start:] - alone).abs().max().item() <= 1e-5
        # the non-prefix official mask (PAD rows see everything) is not the P-Tuning one: pad rows differ
        other = model(input_ids=ids, attention_mask=official_attention_mask(mask), position_ids=positions).logits
    assert (other[1, : t - len(rows[1])] - out[1, : t - len(rows[1])]).abs().max().item() > 1e-3


def test_default_padded_prefix_forward_is_pad_invariant(base: Any) -> None:
    """glmtune's default (tokenizer positions and transformers' mask): a padded row computes what it does alone."""
    model = _model(base, False)
    ids = torch.tensor([[0, 0, 0, 5, 6, 7], [1, 2, 3, 5, 6, 7]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    positions = torch.tensor([[0, 0, 0, 0, 1, 2], [0, 1, 2, 3, 4, 5]])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        alone = model(input_ids=ids[:1, 3:]).logits
    assert (out[0, 3:] - alone[0]).abs().max().item() <= 1e-5
