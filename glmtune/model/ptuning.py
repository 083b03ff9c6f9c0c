"""P-Tuning v2 for ChatGLM2/3 (and GLM-4) on the native model, with the official semantics and file format.

Official semantics (``ChatGLMModel.get_prompt``): a learned prefix of ``pre_seq_len`` key/value vectors per layer
(``Embedding(pre_seq_len, layers*2*groups*kv_channels)``, optionally through a Linear-Tanh-Linear projection),
dropout 0.1 in training, fed to every layer as already-rotated past keys/values (the prefix keys are NOT rotated),
visible to every query; the real tokens keep positions ``0..T-1``; the base model is frozen. peft's PrefixTuning
differs (positions shifted by the prefix, and it breaks with gradient checkpointing because it lives in the cache);
here the prefix is concatenated inside attention, outside the cache, so checkpointing and generation both work.

Files: official = ``pytorch_model.bin`` holding only ``transformer.prefix_encoder.*`` plus ``config.json`` (full
model config + ``pre_seq_len``/``prefix_projection``), as the official ptuning trainer saves it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.models.glm import modeling_glm

from glmtune.errors import GlmtuneError

OFFICIAL_PREFIX = "transformer.prefix_encoder."


class PrefixEncoder(nn.Module):
    """The official prefix encoder: ids ``0..pre_seq_len-1`` -> per-layer key/value vectors."""

    def __init__(self, pre_seq_len: int, kv_size: int, hidden_size: int, projection: bool) -> None:
        super().__init__()
        self.pre_seq_len = pre_seq_len
        self.projection = projection
        self.embedding = nn.Embedding(pre_seq_len, kv_size)
        if projection:
            self.trans = nn.Sequential(nn.Linear(kv_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, kv_size))

    def forward(self, prefix: torch.Tensor) -> torch.Tensor:
        out = self.embedding(prefix)
        return self.trans(out) if self.projection else out


class PrefixAttention(modeling_glm.GlmAttention):
    """``GlmAttention`` that prepends the current prefix keys/values (set by :class:`PrefixModel`)."""

    prefix_kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, past_key_values=None, **kwargs):
        cache = kwargs.pop("cache", None)  # transformers >= 5.24 names it `cache` (an empty cache is falsy)
        if cache is None:
            cache = past_key_values
        if self.prefix_kv is None:
            return super().forward(hidden_states, position_embeddings, attention_mask, cache, **kwargs)
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        k = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        v = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        cos, sin = position_embeddings
        q, k = modeling_glm.apply_rotary_pos_emb(q, k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        pk, pv = self.prefix_kv
        k = torch.cat([pk.to(k.dtype), k], dim=2)
        v = torch.cat([pv.to(v.dtype), v], dim=2)
        mask = _prefix_mask(attention_mask, q, k, pk.shape[2])
        interface = modeling_glm.ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, modeling_glm.eager_attention_forward
        )
        out, weights = interface(
            self,
            q,
            k,
            v,
            mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )
        out = out.reshape(*input_shape, -1).contiguous()
        return self.o_proj(out), weights


def _prefix_mask(mask: torch.Tensor | None, q: torch.Tensor, k: torch.Tensor, n_prefix: int) -> torch.Tensor:
    """The 4-D additive/bool mask with ``n_prefix`` always-visible columns in front."""
    bsz, q_len, k_len = q.shape[0], q.shape[2], k.shape[2]
    if mask is None:
        past = k_len - n_prefix - q_len
        causal = torch.ones(q_len, k_len - n_prefix, dtype=torch.bool, device=q.device).tril(diagonal=past)
        body = causal[None, None].expand(bsz, 1, q_len, k_len - n_prefix)
        return torch.cat([torch.ones(bsz, 1, q_len, n_prefix, dtype=torch.bool, device=q.device), body], dim=-1)
    if mask.dtype == torch.bool:
        visible = torch.ones(*mask.shape[:-1], n_prefix, dtype=torch.bool, device=mask.device)
    else:
        visible = torch.zeros(*mask.shape[:-1], n_prefix, dtype=mask.dtype, device=mask.device)
    mask = mask[..., : k_len - n_prefix]
    return torch.cat([visible.expand(mask.shape[0], mask.shape[1], mask.shape[2], n_prefix), mask], dim=-1)


class PTuningGlmForCausalLM(modeling_glm.GlmForCausalLM):
    """A ``GlmForCausalLM`` with an official P-Tuning v2 prefix (made by :func:`add_prefix`)."""

    def forward(self, input_ids=None, *args: Any, inputs_embeds=None, **kwargs: Any):
        ref = input_ids if input_ids is not None else inputs_embeds
        # set for this call and left in place: gradient checkpointing recomputes the layers during backward
        for layer, kv in zip(self.model.layers, prefix_key_values(self, ref.shape[0]), strict=False):
            layer.self_attn.prefix_kv = kv
        return super().forward(input_ids, *args, inputs_embeds=inputs_embeds, **kwargs)


def add_prefix(model: Any, pre_seq_len: int, prefix_projection: bool = False, dropout: float = 0.1) -> Any:
    """Turn a native ``GlmForCausalLM`` into a P-Tuning v2 model in place (base frozen, prefix trainable)."""
    cfg = model.config
    kv_size = cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * cfg.head_dim
    for param in model.parameters():
        param.requires_grad = False
    model.prefix_encoder = PrefixEncoder(pre_seq_len, kv_size, cfg.hidden_size, prefix_projection).to(
        device=model.device, dtype=torch.float32
    )
    model.prefix_dropout = nn.Dropout(dropout)
    model.prefix_encoder.train(model.training)
    model.prefix_dropout.train(model.training)
    for layer in model.model.layers:
        layer.self_attn.__class__ = PrefixAttention
    model.__class__ = PTuningGlmForCausalLM
    cfg.pre_seq_len = pre_seq_len
    cfg.prefix_projection = prefix_projection
    return model


def prefix_key_values(model: Any, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (key, value) of shape [batch, kv_heads, pre_seq_len, head_dim], as ``get_prompt`` builds them."""
    cfg = model.config
    enc = model.prefix_encoder
    ids = torch.arange(enc.pre_seq_len, device=enc.embedding.weight.device).unsqueeze(0).expand(batch_size, -1)
    dtype = model.model.embed_tokens.weight.dtype
    kv = enc(ids).to(dtype)
    kv = kv.view(batch_size, enc.pre_seq_len, cfg.num_hidden_layers * 2, cfg.num_key_value_heads, cfg.head_dim)
    kv = model.prefix_dropout(kv)
    kv = kv.permute(2, 0, 3, 1, 4)  # [layers*2, batch, heads, pre, head_dim]
    return [(kv[2 * i], kv[2 * i + 1]) for i in range(cfg.num_hidden_layers)]


# ---------------------------------------------------------------------------------------------- files
def read_official_prefix(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(prefix_encoder state dict with the official prefix stripped, config.json) of an official checkpoint."""
    config_path = directory / "config.json"
    weights = directory / "pytorch_model.bin"
    if not config_path.is_file():
        raise GlmtuneError(f"{config_path}: missing (a P-Tuning checkpoint needs config.json with pre_seq_len)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if not config.get("pre_seq_len"):
        raise GlmtuneError(f"{config_path}: no pre_seq_len: not a P-Tuning v2 checkpoint")
    if weights.is_file():
        try:
            state = torch.load(str(weights), map_location="cpu", weights_only=True)
        except Exception as e:
            raise GlmtuneError(f"{weights}: cannot read (weights_only=True): {e}") from None
    elif (directory / "prefix_encoder.safetensors").is_file():
        from safetensors.torch import load_file

        state = {OFFICIAL_PREFIX + k: v for k, v in load_file(str(directory / "prefix_encoder.safetensors")).items()}
    else:
        raise GlmtuneError(f"{directory}: no pytorch_model.bin with the prefix encoder")
    prefix = {k[len(OFFICIAL_PREFIX) :]: v for k, v in state.items() if k.startswith(OFFICIAL_PREFIX)}
    if not prefix:
        raise GlmtuneError(f"{weights}: holds no {OFFICIAL_PREFIX}* tensors")
    return prefix, config


def attach_official_prefix(model: Any, directory: Path) -> Any:
    """Load an official P-Tuning v2 checkpoint directory onto ``model`` (as ptuning/main.py does)."""
    prefix, config = read_official_prefix(directory)
    add_prefix(model, int(config["pre_seq_len"]), bool(config.get("prefix_projection", False)))
    _load_prefix_state(model, prefix, directory)
    return model


def attach_native_prefix(model: Any, directory: Path) -> Any:
    """Load ``prefix_encoder.safetensors`` written by glmtune next to a native model."""
    from safetensors.torch import load_file

    cfg = model.config
    add_prefix(model, int(cfg.pre_seq_len), bool(getattr(cfg, "prefix_projection", False)))
    _load_prefix_state(model, load_file(str(directory / "prefix_encoder.safetensors")), directory)
    return model


def _load_prefix_state(model: Any, state: dict[str, torch.Tensor], where: Path) -> None:
    try:
        model.prefix_encoder.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise GlmtuneError(f"{where}: prefix does not fit this base model: {first}") from None


def save_official_prefix(model: Any, directory: Path, original_config: dict[str, Any]) -> None:
    """Write the prefix as the official trainer does: ``pytorch_model.bin`` + full ``config.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {OFFICIAL_PREFIX + k: v.detach().cpu().contiguous() for k, v in model.prefix_encoder.state_dict().items()}
    torch.save(state, directory / "pytorch_model.bin")
    cfg = dict(
        original_config, pre_seq_len=model.config.pre_seq_len, prefix_projection=bool(model.config.prefix_projection)
    )
    (directory / "config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
