"""``make-tiny`` for ChatGLM-6B (v1): a deterministic tiny checkpoint in the original THUDM layout.

Built like the reference fixture: official ``config.json``/``tokenizer_config.json`` keys, vocabulary padded to a
multiple of 128 (padding rows zero), ``lm_head.weight`` equal to the word embeddings, fp16-representable values,
``rotary_emb.inv_freq`` buffers stored. No ``.py`` file is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from glmtune.model.chatglm_v1.configuration import ChatGLMv1Config
from glmtune.model.chatglm_v1.layers import rotary_inv_freq
from glmtune.model.shards import write_weights
from glmtune.tokenization.icetext_v1 import ChatGLMv1Tokenizer

TINY_V1 = {
    "hidden_size": 64,
    "num_layers": 2,
    "num_attention_heads": 4,
    "inner_hidden_size": 256,
    "max_sequence_length": 2048,
}
AUTO_MAP_V1 = {
    "AutoConfig": "configuration_chatglm.ChatGLMConfig",
    "AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration",
    "AutoModelForSeq2SeqLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
}


def tokenizer_config_v1(name_or_path: str, num_image_tokens: int = 0) -> dict:
    """The official ``tokenizer_config.json`` of ChatGLM-6B (final revision: no image-token offset)."""
    return {
        "name_or_path": name_or_path,
        "bos_token": "<sop>",
        "eos_token": "<eop>",
        "end_token": "</s>",
        "gmask_token": "[gMASK]",
        "mask_token": "[MASK]",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "remove_space": False,
        "do_lower_case": False,
        "tokenizer_class": "ChatGLMTokenizer",
        "num_image_tokens": num_image_tokens,
        "auto_map": {"AutoTokenizer": ["tokenization_chatglm.ChatGLMTokenizer", None]},
    }


def tiny_config_v1(tokenizer: ChatGLMv1Tokenizer, name_or_path: str) -> dict:
    """Official-keyed ``config.json`` of a tiny v1 checkpoint whose special ids come from ``tokenizer``."""
    padded = (tokenizer.vocab_size + 127) // 128 * 128
    config = ChatGLMv1Config(
        vocab_size=padded,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        mask_token_id=tokenizer.mask_token_id,
        gmask_token_id=tokenizer.gmask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        layernorm_epsilon=1e-5,
        **TINY_V1,
    ).to_official_dict()
    config.update(
        _name_or_path=f"tiny-{name_or_path.split('/')[-1]}",
        auto_map=AUTO_MAP_V1,
        torch_dtype="float32",
        transformers_version="4.27.1",
    )
    return config


def random_v1_weights(config: dict, n_tokens: int, seed: int = 0, std: float = 0.2) -> dict[str, torch.Tensor]:
    """Seeded N(0, std) weights (norms 1/0) in the original names; rows >= ``n_tokens`` of the embedding are zero."""
    gen = torch.Generator().manual_seed(seed)
    h, inner, layers = config["hidden_size"], config["inner_hidden_size"], config["num_layers"]

    def normal(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * std).half().float()

    emb = normal(config["vocab_size"], h)
    emb[n_tokens:] = 0
    weights = {
        "transformer.word_embeddings.weight": emb,
        "lm_head.weight": emb.clone(),
        "transformer.final_layernorm.weight": torch.ones(h),
        "transformer.final_layernorm.bias": torch.zeros(h),
    }
    head_dim = h // config["num_attention_heads"]
    for i in range(layers):
        p = f"transformer.layers.{i}."
        weights.update(
            {
                p + "input_layernorm.weight": torch.ones(h),
                p + "input_layernorm.bias": torch.zeros(h),
                p + "attention.query_key_value.weight": normal(3 * h, h),
                p + "attention.query_key_value.bias": normal(3 * h),
                p + "attention.dense.weight": normal(h, h),
                p + "attention.dense.bias": normal(h),
                p + "attention.rotary_emb.inv_freq": rotary_inv_freq(head_dim // 2).clone(),
                p + "post_attention_layernorm.weight": torch.ones(h),
                p + "post_attention_layernorm.bias": torch.zeros(h),
                p + "mlp.dense_h_to_4h.weight": normal(inner, h),
                p + "mlp.dense_h_to_4h.bias": normal(inner),
                p + "mlp.dense_4h_to_h.weight": normal(h, inner),
                p + "mlp.dense_4h_to_h.bias": normal(h),
            }
        )
    return weights


def write_tiny_v1(
    directory: Path, name_or_path: str, fmt: str = "safetensors", seed: int = 0, std: float = 0.2
) -> None:
    """Write config, tokenizer config and weights next to the ``ice_text.model`` already in ``directory``."""
    directory = Path(directory)
    tokenizer = ChatGLMv1Tokenizer(str(directory / "ice_text.model"), num_image_tokens=0)
    config = tiny_config_v1(tokenizer, name_or_path)
    for name, data in (("config.json", config), ("tokenizer_config.json", tokenizer_config_v1(name_or_path))):
        (directory / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_weights(directory, random_v1_weights(config, tokenizer.vocab_size, seed, std), fmt)


__all__ = ["random_v1_weights", "tiny_config_v1", "tokenizer_config_v1", "write_tiny_v1"]
