"""ChatGLM2/3 and GLM-4 configs: original THUDM ``config.json`` <-> transformers ``GlmConfig``.

The native ``GlmForCausalLM`` computes what the official ChatGLM2/3/GLM-4 code computes once these fields are
mapped (rope base = 10000 x ``rope_ratio``, rotary on half of each head, multi-query groups = kv heads).
``GlmConfig`` defaults are GLM-4-9B's (pad 151329, eos list): they are always set explicitly here.
"""

from __future__ import annotations

from typing import Any

from transformers import GlmConfig

from glmtune.errors import GlmtuneError
from glmtune.families import Family, get_family

REQUIRED_KEYS = (
    "hidden_size",
    "num_layers",
    "num_attention_heads",
    "kv_channels",
    "ffn_hidden_size",
    "padded_vocab_size",
    "multi_query_group_num",
    "layernorm_epsilon",
)


def native_config(original: dict[str, Any], family: str, where: str = "config.json") -> GlmConfig:
    """The ``GlmConfig`` of an original-layout ChatGLM2/3/GLM-4 config dict."""
    missing = [k for k in REQUIRED_KEYS if k not in original]
    if missing:
        raise GlmtuneError(f"{where}: missing key(s) {', '.join(missing)} for a {family} checkpoint")
    if not original.get("rmsnorm", True) or not original.get("post_layer_norm", True):
        raise GlmtuneError(f"{where}: rmsnorm/post_layer_norm false is not a released ChatGLM architecture")
    if original.get("apply_residual_connection_post_layernorm", False) or original.get("add_bias_linear", False):
        raise GlmtuneError(f"{where}: apply_residual_connection_post_layernorm/add_bias_linear are not supported")
    groups = original["multi_query_group_num"] if original.get("multi_query_attention", True) else None
    heads = original["num_attention_heads"]
    rope_theta = 10000.0 * float(original.get("rope_ratio", 1))
    eos = original.get("eos_token_id", 2)
    return GlmConfig(
        vocab_size=original["padded_vocab_size"],
        hidden_size=original["hidden_size"],
        intermediate_size=original["ffn_hidden_size"],
        num_hidden_layers=original["num_layers"],
        num_attention_heads=heads,
        num_key_value_heads=groups or heads,
        head_dim=original["kv_channels"],
        rms_norm_eps=original["layernorm_epsilon"],
        max_position_embeddings=original.get("seq_length", 8192),
        attention_bias=original.get("add_qkv_bias", True),
        attention_dropout=original.get("attention_dropout", 0.0),
        pad_token_id=original.get("pad_token_id", 0),
        eos_token_id=eos,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta, "partial_rotary_factor": 0.5},
        glmtune_family=family,
        glmtune_seq_length=original.get("seq_length"),
        glmtune_name_or_path=original.get("_name_or_path", ""),
    )


def original_config(native: GlmConfig, family: Family | None = None) -> dict[str, Any]:
    """The official ChatGLM2/3/GLM-4 ``config.json`` dict of a native config (inverse of :func:`native_config`)."""
    if family is None and getattr(native, "glmtune_family", None):
        family = get_family(native.glmtune_family)
    name_or_path = getattr(native, "glmtune_name_or_path", None) or f"glmtune-{family.name if family else 'chatglm'}"
    rope = native.rope_parameters or {}
    theta = float(rope.get("rope_theta", 10000.0))
    out: dict[str, Any] = {
        "_name_or_path": name_or_path,
        "model_type": "chatglm",
        "architectures": ["ChatGLMModel"],
        "add_bias_linear": False,
        "add_qkv_bias": bool(native.attention_bias),
        "apply_query_key_layer_scaling": True,
        "apply_residual_connection_post_layernorm": False,
        "attention_dropout": float(native.attention_dropout or 0.0),
        "attention_softmax_in_fp32": True,
        "bias_dropout_fusion": True,
        "ffn_hidden_size": native.intermediate_size,
        "fp32_residual_connection": False,
        "hidden_dropout": 0.0,
        "hidden_size": native.hidden_size,
        "kv_channels": native.head_dim,
        "layernorm_epsilon": native.rms_norm_eps,
        "multi_query_attention": native.num_key_value_heads != native.num_attention_heads,
        "multi_query_group_num": native.num_key_value_heads,
        "num_attention_heads": native.num_attention_heads,
        "num_layers": native.num_hidden_layers,
        "original_rope": True,
        "padded_vocab_size": native.vocab_size,
        "post_layer_norm": True,
        "rmsnorm": True,
        "seq_length": getattr(native, "glmtune_seq_length", None) or native.max_position_embeddings,
        "use_cache": True,
        "torch_dtype": str(native.dtype or "float32").replace("torch.", ""),
        "tie_word_embeddings": False,
        "eos_token_id": native.eos_token_id,
        "pad_token_id": native.pad_token_id,
    }
    if family is not None:
        out.update(family.official_config_keys(out))
    if theta != 10000.0:
        ratio = theta / 10000.0
        out["rope_ratio"] = int(ratio) if ratio.is_integer() else ratio
    return out
