"""Building blocks of ChatGLM-6B (v1): 2D rotary embedding, self-attention (eager and SDPA), GLU MLP, GLM block,
and the P-Tuning v2 prefix encoder. Parameter names are the official ones (``query_key_value``, ``dense``,
``dense_h_to_4h``, ``dense_4h_to_h``, ``input_layernorm``...) so original checkpoints load without renaming.

Tensors are batch-first here (``[B, T, ...]``; keys/values ``[B, heads, S, head_dim]`` as transformers' caches hold
them); the official code is sequence-first, which changes no value.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

# ``GLMBlock(num_layers=28)`` is the official default and ``get_layer`` never passes the real count: every v1
# checkpoint, whatever its depth, scales the residual branch by sqrt(2 * 28).
RESIDUAL_ALPHA = (2 * 28) ** 0.5
MASKED_SCORE = -10000.0  # official ``masked_fill_`` value, multiplied by (layer_id + 1) before the softmax


@functools.lru_cache(maxsize=16)
def rotary_inv_freq(dim: int, base: int = 10000) -> torch.Tensor:
    """Official ``RotaryEmbedding.inv_freq``: computed in fp32, stored as fp16, used as fp32 after ``.float()``."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
    return inv_freq.half().float()


_GELU_C = 0.7978845608028654  # sqrt(2 / pi)


class _OfficialGelu(torch.autograd.Function):
    """``0.5*x*(1 + tanh(c*x*(1 + 0.044715*x*x)))`` in the official operation order (bit-exact with
    ``gelu_impl``; ``F.gelu(approximate="tanh")`` differs by ~1e-7 per element, ~2e-5 on the logits), saving only
    ``x`` for the backward pass like ``F.gelu`` does."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return 0.5 * x * (1.0 + torch.tanh(_GELU_C * x * (1.0 + 0.044715 * x * x)))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        t = torch.tanh(_GELU_C * x * (1.0 + 0.044715 * x * x))
        return grad * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _GELU_C * (1.0 + 3 * 0.044715 * x * x))


def official_gelu(x: torch.Tensor) -> torch.Tensor:
    """The official tanh-approximation GELU (see :class:`_OfficialGelu`)."""
    return _OfficialGelu.apply(x)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _cos_sin(positions: torch.Tensor, dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of ``positions`` [B, T] for a rotary block of width ``dim``: [B, T, 1, dim]."""
    inv_freq = rotary_inv_freq(dim).to(positions.device)
    angles = positions.float()[..., None] * inv_freq
    emb = torch.cat((angles, angles), dim=-1)[:, :, None, :]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor, two_d: bool):
    """Rotate q, k [B, T, heads, head_dim]: 2D = first half by positions, second half by block positions."""
    if not two_d:
        cos, sin = _cos_sin(position_ids, q.shape[-1], q.dtype)
        return _rotate(q, cos, sin), _rotate(k, cos, sin)
    q1, q2 = q.chunk(2, dim=-1)
    k1, k2 = k.chunk(2, dim=-1)
    cos, sin = _cos_sin(position_ids[:, 0], q1.shape[-1], q.dtype)
    q1, k1 = _rotate(q1, cos, sin), _rotate(k1, cos, sin)
    cos, sin = _cos_sin(position_ids[:, 1], q2.shape[-1], q.dtype)
    q2, k2 = _rotate(q2, cos, sin), _rotate(k2, cos, sin)
    return torch.cat([q1, q2], dim=-1), torch.cat([k1, k2], dim=-1)


def eager_attention(q, k, v, mask: torch.Tensor | None, layer_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The official ``attention_fn``: q scaled by 1/(sqrt(d)*(l+1)), masked_fill(-10000), x(l+1), fp32 softmax."""
    coeff = float(layer_id + 1)
    scores = torch.matmul(q / (math.sqrt(q.shape[-1]) * coeff), k.transpose(-1, -2))
    if mask is not None:  # (the official skip for an all-False mask changes nothing)
        scores = scores.masked_fill(mask, MASKED_SCORE)
    probs = F.softmax(scores.float() * coeff, dim=-1).to(v.dtype)
    return torch.matmul(probs, v), probs


def sdpa_attention(q, k, v, mask: torch.Tensor | None) -> torch.Tensor:
    """SDPA computing what :func:`eager_attention` does, fully masked rows included.

    A row whose keys are all masked gets the same score (-10000*(l+1)) everywhere in the official code, i.e. a
    uniform average of all values; SDPA would return NaN there, so those rows attend everywhere and are replaced by
    the mean of the values.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    dead = mask.all(dim=-1, keepdim=True)  # no host sync: always blended
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=~mask | dead, scale=scale)
    return torch.where(dead, v.mean(dim=2, keepdim=True).to(out.dtype), out)


class V1SelfAttention(torch.nn.Module):
    """Self-attention with the fused ``query_key_value`` [3H, H] interleaved per head (q|k|v of each head)."""

    def __init__(self, config: Any, layer_id: int) -> None:
        super().__init__()
        self.config = config
        self.layer_id = layer_id
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.two_d = bool(config.position_encoding_2d)
        self.query_key_value = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=True)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, bias=True)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        prefix_key: torch.Tensor | None = None,
        prefix_value: torch.Tensor | None = None,
        past_key_values: Any = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        bsz, seq, _ = hidden_states.shape
        mixed = self.query_key_value(hidden_states).view(bsz, seq, self.num_heads, 3 * self.head_dim)
        q, k, v = mixed.split(self.head_dim, dim=-1)
        q, k = apply_rotary(q, k, position_ids, self.two_d)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, self.layer_id)
        if prefix_key is not None:  # P-Tuning v2: prefix keys are NOT rotated, and never enter the cache
            k = torch.cat([prefix_key.to(k.dtype), k], dim=2)
            v = torch.cat([prefix_value.to(v.dtype), v], dim=2)
        if attention_mask is not None and attention_mask.shape[-2:] != (seq, k.shape[2]):
            raise ValueError(
                f"attention_mask covers {tuple(attention_mask.shape[-2:])} (queries, keys) but this step has "
                f"{seq} queries and {k.shape[2]} keys"
            )
        probs = None
        if output_attentions or self.config._attn_implementation == "eager":
            ctx, probs = eager_attention(q, k, v, attention_mask, self.layer_id)
        else:
            ctx = sdpa_attention(q, k, v, attention_mask)
        ctx = ctx.transpose(1, 2).reshape(bsz, seq, self.num_heads * self.head_dim)
        return self.dense(ctx), probs


class V1MLP(torch.nn.Module):
    """``dense_h_to_4h`` -> GELU (tanh approximation, as the official ``gelu_impl``) -> ``dense_4h_to_h``."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.dense_h_to_4h = nn.Linear(config.hidden_size, config.inner_hidden_size, bias=True)
        self.dense_4h_to_h = nn.Linear(config.inner_hidden_size, config.hidden_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(official_gelu(self.dense_h_to_4h(x)))


class GLMBlock(GradientCheckpointingLayer):
    """``x1 = LN1(x); h = x1*alpha + attn(x1); m = LN2(h); out = m*alpha + mlp(m)`` (residuals are normed values)."""

    def __init__(self, config: Any, layer_id: int) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)
        self.attention = V1SelfAttention(config, layer_id)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)
        self.mlp = V1MLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        prefix_key: torch.Tensor | None = None,
        prefix_value: torch.Tensor | None = None,
        past_key_values: Any = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x1 = self.input_layernorm(hidden_states)
        attn, probs = self.attention(
            x1, position_ids, attention_mask, prefix_key, prefix_value, past_key_values, output_attentions
        )
        h = x1 * RESIDUAL_ALPHA + attn
        m = self.post_attention_layernorm(h)
        return m * RESIDUAL_ALPHA + self.mlp(m), probs


class V1PrefixEncoder(torch.nn.Module):
    """Official ``PrefixEncoder``: ids ``0..pre_seq_len-1`` -> ``[B, P, 2 * layers * hidden]`` past keys/values.

    State dict keys (``embedding.weight``, ``trans.0.*``, ``trans.2.*``) equal the official ones after the
    ``transformer.prefix_encoder.`` prefix is stripped.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.pre_seq_len = int(config.pre_seq_len)
        self.prefix_projection = bool(config.prefix_projection)
        kv_size = config.num_layers * config.hidden_size * 2
        if self.prefix_projection:
            self.embedding = nn.Embedding(self.pre_seq_len, config.hidden_size)
            self.trans = nn.Sequential(
                nn.Linear(config.hidden_size, config.hidden_size), nn.Tanh(), nn.Linear(config.hidden_size, kv_size)
            )
        else:
            self.embedding = nn.Embedding(self.pre_seq_len, kv_size)

    def forward(self, prefix: torch.Tensor) -> torch.Tensor:
        out = self.embedding(prefix)
        return self.trans(out) if self.prefix_projection else out


__all__ = [
    "RESIDUAL_ALPHA",
    "V1MLP",
    "GLMBlock",
    "V1PrefixEncoder",
    "V1SelfAttention",
    "apply_rotary",
    "eager_attention",
    "official_gelu",
    "rotary_inv_freq",
    "sdpa_attention",
]
