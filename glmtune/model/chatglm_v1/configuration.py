"""``ChatGLMv1Config``: the official ChatGLM-6B ``config.json`` keys, as a transformers 5 config."""

from __future__ import annotations

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# the keys the official configuration_chatglm.py reads (and writes back in the original layout)
OFFICIAL_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_layers",
    "num_attention_heads",
    "layernorm_epsilon",
    "use_cache",
    "bos_token_id",
    "eos_token_id",
    "mask_token_id",
    "gmask_token_id",
    "pad_token_id",
    "max_sequence_length",
    "inner_hidden_size",
    "position_encoding_2d",
    "quantization_bit",
    "pre_seq_len",
    "prefix_projection",
)


@strict
class ChatGLMv1Config(PreTrainedConfig):
    """Configuration of ChatGLM-6B; defaults are the official ones (the 130528-id revision has its own config)."""

    model_type = "chatglm_v1"
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["past_key_values"]
    attribute_map: ClassVar[dict[str, str]] = {
        "num_hidden_layers": "num_layers",
        "intermediate_size": "inner_hidden_size",
        "max_position_embeddings": "max_sequence_length",
        "layer_norm_eps": "layernorm_epsilon",
    }

    vocab_size: int = 150528
    hidden_size: int = 4096
    num_layers: int = 28
    num_attention_heads: int = 32
    layernorm_epsilon: float = 1e-5
    use_cache: bool = True
    bos_token_id: int | None = 150004
    eos_token_id: int | list[int] | None = 150005
    mask_token_id: int = 150000
    gmask_token_id: int = 150001
    pad_token_id: int | None = 0
    max_sequence_length: int = 2048
    inner_hidden_size: int = 16384
    position_encoding_2d: bool = True
    quantization_bit: int = 0
    pre_seq_len: int | None = None
    prefix_projection: bool = False
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        kwargs.pop("model_type", None)
        super().__post_init__(**kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def check_sizes(self, where: str = "config.json") -> None:
        """Raise ``ValueError`` naming the key when the sizes cannot build the v1 architecture."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"{where}: hidden_size {self.hidden_size} is not a multiple of num_attention_heads")
        if self.head_dim % 4 and self.position_encoding_2d:
            raise ValueError(f"{where}: head dim {self.head_dim} must be a multiple of 4 for the 2D rotary embedding")
        if self.quantization_bit:
            raise ValueError(
                f"{where}: quantization_bit {self.quantization_bit}: quantized v1 checkpoints "
                "(chatglm-6b-int4/int8) are not supported; use the fp16 checkpoint"
            )

    def to_official_dict(self) -> dict[str, Any]:
        """The original THUDM ``config.json`` (model_type ``chatglm``, official keys only)."""
        out: dict[str, Any] = {"architectures": ["ChatGLMModel"], "model_type": "chatglm"}
        for key in OFFICIAL_KEYS:
            out[key] = getattr(self, key)
        if out["pre_seq_len"] is None:
            out.pop("pre_seq_len")
            out.pop("prefix_projection")
        if self.dtype is not None:
            out["torch_dtype"] = str(self.dtype).replace("torch.", "")
        return out

    @classmethod
    def from_official_dict(cls, config: dict[str, Any]) -> ChatGLMv1Config:
        """A config from an original (``model_type: chatglm``) or glmtune (``chatglm_v1``) ``config.json``."""
        known = {k: config[k] for k in OFFICIAL_KEYS if k in config}
        if "torch_dtype" in config or "dtype" in config:
            known["dtype"] = config.get("torch_dtype") or config.get("dtype")
        if "tie_word_embeddings" in config:
            known["tie_word_embeddings"] = bool(config["tie_word_embeddings"])
        for key in ("_name_or_path", "glmtune_family"):
            if key in config:
                known[key] = config[key]
        return cls(**known)


__all__ = ["OFFICIAL_KEYS", "ChatGLMv1Config"]
