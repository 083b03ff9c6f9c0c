"""``glmtune make-tiny``: deterministic tiny random-weight checkpoints in the ORIGINAL THUDM layouts.

The tokenizers come from ``glmtune/assets/tiny`` (trained by ``scripts/build_tiny_tokenizers.py`` on the
project's own text); weights are N(0, 0.2) from a seeded generator (so logits are not flat and tiny models learn
quickly), norms are 1. Output is byte-identical across runs. No ``.py`` file is written.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from glmtune.errors import GlmtuneError
from glmtune.families import VARIANTS, Family
from glmtune.io import atomic_directory
from glmtune.model.shards import write_weights

INIT_STD = 0.2
TINY_DIMS = {
    "hidden_size": 64,
    "num_layers": 2,
    "num_attention_heads": 4,
    "kv_channels": 16,
    "multi_query_group_num": 2,
    "ffn_hidden_size": 128,
}
AUTO_MAP = {
    "AutoConfig": "configuration_chatglm.ChatGLMConfig",
    "AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration",
    "AutoModelForCausalLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
    "AutoModelForSeq2SeqLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
    "AutoModelForSequenceClassification": "modeling_chatglm.ChatGLMForSequenceClassification",
}


def asset_path(name: str) -> Path:
    """A file of ``glmtune/assets/tiny``."""
    path = Path(str(resources.files("glmtune") / "assets" / "tiny" / name))
    if not path.is_file():
        raise GlmtuneError(f"{path}: missing tiny tokenizer asset (run scripts/build_tiny_tokenizers.py)")
    return path


def make_tiny(variant: str, out_dir: str | Path, fmt: str = "safetensors", seed: int = 0, force: bool = False) -> Path:
    """Write a tiny checkpoint of ``variant`` (a family or variant name) to ``out_dir`` (replaced only with
    ``force``); returns the path."""
    if variant not in VARIANTS:
        raise GlmtuneError(f"--family {variant!r}: choose one of {', '.join(sorted(VARIANTS))}")
    if fmt not in ("safetensors", "bin"):
        raise GlmtuneError(f"--format {fmt!r}: choose safetensors or bin")
    family, var = VARIANTS[variant]
    out = Path(out_dir)
    if family.architecture == "native":
        from glmtune.model.tiny_native import write_tiny_native

        with atomic_directory(out, overwrite=force) as tmp:
            write_tiny_native(tmp, family, var, asset_path(family.tiny_tokenizer), fmt, seed, INIT_STD)  # type: ignore[arg-type]
        return out
    with atomic_directory(out, overwrite=force) as tmp:
        vocab = asset_path(family.tiny_tokenizer)
        shutil.copyfile(vocab, tmp / family.tokenizer_file)
        if family.architecture == "chatglm-v1":
            from glmtune.model.chatglm_v1.tiny import write_tiny_v1

            write_tiny_v1(tmp, var.name_or_path, fmt=fmt, seed=seed, std=INIT_STD)
        else:
            from glmtune.tokenization import load_tokenizer

            n_tokens = len(load_tokenizer(tmp, family))
            config = tiny_config(family, var.name_or_path, var.config_overrides, n_tokens)
            _write_json(tmp / "config.json", config)
            _write_json(tmp / "tokenizer_config.json", tokenizer_config(family, var.name_or_path))
            write_weights(tmp, random_original_weights(config, seed), fmt)
    return out


def tiny_config(family: Family, name_or_path: str, overrides: dict[str, Any], n_tokens: int) -> dict[str, Any]:
    """Official-keyed ``config.json`` of a tiny ChatGLM2/3/GLM-4 checkpoint (vocab padded to a multiple of 16);
    the family's own values (:meth:`~glmtune.families.Family.tiny_config`) over the shared ones."""
    padded = (n_tokens + 15) // 16 * 16
    config: dict[str, Any] = {
        "_name_or_path": f"tiny-{name_or_path.split('/')[-1]}",
        "model_type": "chatglm",
        "architectures": ["ChatGLMModel"],
        "auto_map": AUTO_MAP,
        "add_bias_linear": False,
        "add_qkv_bias": True,
        "apply_query_key_layer_scaling": True,
        "apply_residual_connection_post_layernorm": False,
        "attention_dropout": 0.0,
        "attention_softmax_in_fp32": True,
        "bias_dropout_fusion": True,
        "ffn_hidden_size": TINY_DIMS["ffn_hidden_size"],
        "fp32_residual_connection": False,
        "hidden_dropout": 0.0,
        "hidden_size": TINY_DIMS["hidden_size"],
        "kv_channels": TINY_DIMS["kv_channels"],
        "layernorm_epsilon": 1e-05,
        "multi_query_attention": True,
        "multi_query_group_num": TINY_DIMS["multi_query_group_num"],
        "num_attention_heads": TINY_DIMS["num_attention_heads"],
        "num_layers": TINY_DIMS["num_layers"],
        "original_rope": True,
        "padded_vocab_size": padded,
        "post_layer_norm": True,
        "rmsnorm": True,
        "seq_length": 1024,
        "use_cache": True,
        "torch_dtype": "float32",
        "transformers_version": "4.40.2",
        "tie_word_embeddings": False,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    config.update(family.tiny_config(n_tokens))
    config.update(family.official_config_keys(config))
    for key, value in overrides.items():
        if key == "seq_length":
            config[key] = min(int(value), 2048)
        else:
            config[key] = value
    return config


def tokenizer_config(family: Family, name_or_path: str) -> dict[str, Any]:
    """The ``tokenizer_config.json`` the official repos ship (data only: glmtune never imports auto_map)."""
    cfg: dict[str, Any] = {
        "name_or_path": f"tiny-{name_or_path.split('/')[-1]}",
        "remove_space": False,
        "do_lower_case": False,
        "tokenizer_class": "ChatGLMTokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_chatglm.ChatGLMTokenizer", None]},
    }
    cfg.update(family.tiny_tokenizer_config())
    return cfg


def random_original_weights(config: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """Seeded random tensors for every original-layout key (sorted order, so output is reproducible)."""
    from glmtune.model.glm_weights import ROTARY_BUFFER, expected_original_shapes, rotary_inv_freq

    gen = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    for name, shape in sorted(expected_original_shapes(config).items()):
        if name.endswith("layernorm.weight"):
            weights[name] = torch.ones(shape)
        else:
            weights[name] = torch.randn(shape, generator=gen) * INIT_STD
    weights[ROTARY_BUFFER] = rotary_inv_freq(config, torch.float32)
    return weights


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
