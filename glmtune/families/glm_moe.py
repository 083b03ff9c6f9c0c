"""The MoE families: GLM-4.5/4.6/4.7 (``glm4_moe``), GLM-4.7-Flash (``glm4_moe_lite``), GLM-5 (``glm_moe_dsa``).

All three use the GLM-4.5 template line (``glm_xml``). LoRA presets (``method.lora_targets`` may name them, mixed
with module names): ``attention``, ``dense_mlp`` (the MLPs of the leading dense layers), ``shared_experts``,
``experts`` (the routed experts' fused ``gate_up_proj``/``down_proj`` parameters, through peft's parameter LoRA) and
``router`` (the router, trained in full). The default is ``attention`` + ``dense_mlp``; experts are opt-in. In a
preset, ``@name`` is a parameter and ``+name`` a module trained in full; entries a model lacks are skipped.
"""

from __future__ import annotations

from glmtune.families.base import Family, Variant
from glmtune.families.glm4 import GLM4
from glmtune.families.glm_xml import Glm45Style, Glm47Style, GlmXmlFamily

GLM45_SPECIALS = (
    *GLM4.special_tokens,  # GLM-4's specials in GLM-4's order, then the GLM-4.5 additions
    "<|begin_of_audio|>",
    "<|end_of_audio|>",
    "<|begin_of_transcription|>",
    "<|end_of_transcription|>",
    "<|code_prefix|>",
    "<|code_middle|>",
    "<|code_suffix|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    "/nothink",
    "<|begin_of_box|>",
    "<|end_of_box|>",
    "<|image|>",
    "<|video|>",
)

MOE_PRESETS = {
    "attention": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
    "dense_mlp": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    "shared_experts": ("shared_experts.gate_proj", "shared_experts.up_proj", "shared_experts.down_proj"),
    "experts": ("@mlp.experts.gate_up_proj", "@mlp.experts.down_proj"),
    "router": ("+mlp.gate",),
}
MLA_PRESETS = {
    **MOE_PRESETS,
    "attention": (
        "self_attn.q_proj",
        "self_attn.q_a_proj",
        "self_attn.q_b_proj",
        "self_attn.kv_a_proj_with_mqa",
        "self_attn.kv_b_proj",
        "self_attn.o_proj",
    ),
}
MOE_TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "moe_intermediate_size": 32,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_shared_experts": 1,
    "n_group": 1,
    "topk_group": 1,
    "norm_topk_prob": True,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-05,
}
MLA_TINY = {
    **MOE_TINY,
    "num_key_value_heads": 4,
    "q_lora_rank": 32,
    "kv_lora_rank": 16,
    "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 8,
    "v_head_dim": 16,
    "routed_scaling_factor": 1.8,
    "mlp_layer_types": ["dense", "sparse"],
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
}


def _moe_family(name: str, title: str, model_type: str, model_class: str, **fields: object) -> Family:
    return GlmXmlFamily(
        name=name,
        title=title,
        architecture="native",
        tokenizer_file="tokenizer.json",
        special_tokens=GLM45_SPECIALS,
        stop_tokens=("<|user|>", "<|observation|>"),
        roles=("system", "user", "assistant", "observation"),
        lora_targets=("attention", "dense_mlp"),
        official_modules={},
        invalid_score_token=198,
        supports_tools=True,
        openai_tools=True,
        reasoning=True,
        tool_calls_in_text=True,
        supports_ptuning=False,
        model_type=model_type,
        model_class=model_class,
        hf_specials=GLM45_SPECIALS,
        moe=True,
        **fields,  # type: ignore[arg-type]
    )


GLM4_MOE = _moe_family(
    "glm4-moe",
    "GLM-4.5/4.6/4.7",
    "glm4_moe",
    "Glm4MoeForCausalLM",
    variants=(
        Variant("glm4-moe", "zai-org/GLM-4.5-Air"),
        Variant("glm-4.7", "zai-org/GLM-4.7", template="glm47"),
    ),
    styles=(Glm45Style(), Glm47Style()),
    lora_presets=MOE_PRESETS,
    tiny={
        **MOE_TINY,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "first_k_dense_replace": 1,
        "attention_bias": True,
        "use_qk_norm": False,
        "num_nextn_predict_layers": 0,
        "routed_scaling_factor": 2.5,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "partial_rotary_factor": 0.5},
    },
)

GLM4_MOE_LITE = _moe_family(
    "glm4-moe-lite",
    "GLM-4.7-Flash",
    "glm4_moe_lite",
    "Glm4MoeLiteForCausalLM",
    variants=(Variant("glm4-moe-lite", "zai-org/GLM-4.7-Flash"),),
    styles=(Glm47Style(), Glm45Style()),
    lora_presets=MLA_PRESETS,
    tiny=MLA_TINY,
)

GLM_MOE_DSA = _moe_family(
    "glm-moe-dsa",
    "GLM-5",
    "glm_moe_dsa",
    "GlmMoeDsaForCausalLM",
    variants=(Variant("glm-moe-dsa", "zai-org/GLM-5"),),
    styles=(Glm47Style(), Glm45Style()),
    lora_presets=MLA_PRESETS,
    tiny={**MLA_TINY, "index_topk": 8, "index_head_dim": 16, "index_n_heads": 2, "head_dim": 16},
    continuous_batching=False,  # its sparse-attention indexer keeps its own key cache: served by model.generate
)
