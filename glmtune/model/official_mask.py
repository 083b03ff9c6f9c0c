"""The official ChatGLM2/3/GLM-4 attention mask for padded batches (compat mode).

Official ``get_masks``: causal, padded keys hidden, but PAD query rows left fully unmasked (they see every position,
future ones included). Only a 4-D mask reproduces the recorded loss/argmax of padded batches; the sane default
(transformers' own mask) gives the same logits at every real position.

With a P-Tuning v2 prefix the official code builds it differently: the padding mask gets ``pre_seq_len`` leading
ones, so ``get_masks`` sees a past: the prefix columns are prepended as visible, pad columns are hidden, and the
PAD-row correction (which only runs without a past) is skipped. glmtune's prefix attention prepends the always
visible prefix columns itself, so the mask to pass covers the ``T`` real columns only.
"""

from __future__ import annotations

import torch


def official_attention_mask(
    attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32, ptuning: bool = False
) -> torch.Tensor:
    """[B, 1, T, T] additive mask (0 visible, dtype-min hidden) equal to the official ``get_masks``; ``ptuning``:
    the one of a P-Tuning v2 model (its prefix columns are added by the model). Pass it with
    ``position_ids=arange(T)``, the official positions."""
    pad = attention_mask.to(torch.float32)
    t = pad.shape[1]
    full = torch.ones(pad.shape[0], t, t, device=pad.device).tril_()
    full = full * pad.unsqueeze(1)
    if not ptuning:
        full = full - (pad.unsqueeze(-1) - 1)
    hidden = (full < 0.5).unsqueeze(1)
    return torch.zeros(hidden.shape, dtype=dtype, device=pad.device).masked_fill_(hidden, torch.finfo(dtype).min)
