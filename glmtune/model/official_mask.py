"""The official ChatGLM2/3/GLM-4 attention mask for padded batches (compat mode).

Official ``get_masks``: causal, padded keys hidden, but PAD query rows left fully unmasked (they see every position,
future ones included). Only a 4-D mask reproduces the recorded loss/argmax of padded batches; the sane default
(transformers' own mask) gives the same logits at every real position.
"""

from __future__ import annotations

import torch


def official_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[B, 1, T, T] additive mask (0 visible, dtype-min hidden) equal to the official ``get_masks``."""
    pad = attention_mask.to(torch.float32)
    t = pad.shape[1]
    full = torch.ones(pad.shape[0], t, t, device=pad.device).tril_()
    full = full * pad.unsqueeze(1)
    full = full - (pad.unsqueeze(-1) - 1)
    hidden = (full < 0.5).unsqueeze(1)
    return torch.zeros(hidden.shape, dtype=dtype, device=pad.device).masked_fill_(hidden, torch.finfo(dtype).min)
