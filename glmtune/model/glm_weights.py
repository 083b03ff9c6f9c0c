"""Weight names of ChatGLM2/3/GLM-4: original THUDM layout <-> native ``GlmForCausalLM``.

Loading uses transformers' own dynamic weight conversion (``WeightRenaming``/``WeightConverter`` registered for
:class:`OriginalLayoutGlm`), so ``from_pretrained`` keeps every feature (dtype, device map, quantization, streaming
shard by shard). The fused ``query_key_value`` is split into q/k/v by the sizes the config gives
([heads*head_dim, kv_heads*head_dim, kv_heads*head_dim]); ``dense_h_to_4h`` is ``gate_up_proj`` as is.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import GlmForCausalLM
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import Split, WeightConverter, WeightRenaming

ROTARY_BUFFER = "transformer.rotary_pos_emb.inv_freq"

RENAMES = (
    (r"^transformer\.embedding\.word_embeddings\.", "model.embed_tokens."),
    (r"^transformer\.encoder\.final_layernorm\.", "model.norm."),
    (r"^transformer\.output_layer\.", "lm_head."),
    (r"^transformer\.encoder\.layers\.", "model.layers."),
    (r"\.self_attention\.dense\.", ".self_attn.o_proj."),
    (r"\.mlp\.dense_h_to_4h\.", ".mlp.gate_up_proj."),
    (r"\.mlp\.dense_4h_to_h\.", ".mlp.down_proj."),
)


class SplitQKV(Split):
    """Split a fused ``query_key_value`` by the config's q/k/v sizes. transformers' ``Split`` reads the sizes off
    the model's parameters, which DeepSpeed ZeRO-3 has partitioned into empty placeholders while loading."""

    def convert(
        self,
        input_dict: dict[str, Any],
        source_patterns: list[str],
        target_patterns: list[str],
        full_layer_name: str,
        model: Any,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        tensors = next(iter(input_dict.values()))
        tensor = tensors[0] if isinstance(tensors, list) else tensors
        cfg = model.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        sizes = [cfg.num_attention_heads * head_dim] + [cfg.num_key_value_heads * head_dim] * 2
        chunks = torch.split(tensor, sizes, dim=self.dim)
        return {target: chunk.contiguous() for target, chunk in zip(target_patterns, chunks, strict=True)}


class OriginalLayoutGlm(GlmForCausalLM):
    """``GlmForCausalLM`` that reads original THUDM ChatGLM2/3/GLM-4 weight files (same modules, same forward)."""

    _keys_to_ignore_on_load_unexpected = [r"rotary_pos_emb\.inv_freq"]


def _conversions() -> list[Any]:
    out: list[Any] = [WeightRenaming(src, dst) for src, dst in RENAMES]
    for kind in ("weight", "bias"):
        out.append(
            WeightConverter(
                f"self_attention.query_key_value.{kind}",
                [f"self_attn.q_proj.{kind}", f"self_attn.k_proj.{kind}", f"self_attn.v_proj.{kind}"],
                operations=[SplitQKV(dim=0)],
            )
        )
    return out


register_checkpoint_conversion_mapping(OriginalLayoutGlm.__name__, _conversions(), overwrite=True)


def expected_original_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor an original ChatGLM2/3/GLM-4 checkpoint must hold, with its shape (from config.json)."""
    h, layers = cfg["hidden_size"], cfg["num_layers"]
    kv = cfg["kv_channels"]
    heads = cfg["num_attention_heads"]
    groups = cfg["multi_query_group_num"] if cfg.get("multi_query_attention", True) else heads
    qkv = heads * kv + 2 * groups * kv
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.embedding.word_embeddings.weight": (cfg["padded_vocab_size"], h),
        "transformer.encoder.final_layernorm.weight": (h,),
        "transformer.output_layer.weight": (cfg["padded_vocab_size"], h),
    }
    for i in range(layers):
        p = f"transformer.encoder.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (h,)
        shapes[p + "post_attention_layernorm.weight"] = (h,)
        shapes[p + "self_attention.query_key_value.weight"] = (qkv, h)
        if cfg.get("add_qkv_bias", True):
            shapes[p + "self_attention.query_key_value.bias"] = (qkv,)
        shapes[p + "self_attention.dense.weight"] = (h, heads * kv)
        shapes[p + "mlp.dense_h_to_4h.weight"] = (2 * cfg["ffn_hidden_size"], h)
        shapes[p + "mlp.dense_4h_to_h.weight"] = (h, cfg["ffn_hidden_size"])
    return shapes


def rotary_inv_freq(cfg: dict[str, Any], dtype: torch.dtype) -> torch.Tensor:
    """The unused ``rotary_pos_emb.inv_freq`` buffer of official checkpoints, computed as the official code does."""
    dim = cfg["kv_channels"] // 2
    return 1.0 / (10000 ** (torch.arange(0, dim, 2).to(dtype=dtype) / dim))


def to_original_state_dict(native_state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Native ``GlmForCausalLM`` tensors renamed/fused back into the original layout (no copies where possible)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in native_state.items():
        if ".self_attn.q_proj." in name or ".self_attn.k_proj." in name or ".self_attn.v_proj." in name:
            continue
        out[_native_to_original_name(name)] = tensor
    for i in range(num_layers):
        for kind in ("weight", "bias"):
            parts = [native_state.get(f"model.layers.{i}.self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")]
            if all(p is not None for p in parts):
                out[f"transformer.encoder.layers.{i}.self_attention.query_key_value.{kind}"] = torch.cat(parts, 0)
    return out


def _native_to_original_name(name: str) -> str:
    fixed = {
        "model.embed_tokens.weight": "transformer.embedding.word_embeddings.weight",
        "model.norm.weight": "transformer.encoder.final_layernorm.weight",
        "lm_head.weight": "transformer.output_layer.weight",
    }
    if name in fixed:
        return fixed[name]
    name = name.replace("model.layers.", "transformer.encoder.layers.", 1)
    name = name.replace(".self_attn.o_proj.", ".self_attention.dense.")
    name = name.replace(".mlp.gate_up_proj.", ".mlp.dense_h_to_4h.")
    return name.replace(".mlp.down_proj.", ".mlp.dense_4h_to_h.")
