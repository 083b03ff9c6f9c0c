"""Fine-tuning methods: what is trainable, and how the model is wrapped (peft for LoRA/QLoRA)."""

from __future__ import annotations

import logging
import re
from typing import Any

import torch

from glmtune.config.schema import MethodConfig, ModelConfig
from glmtune.errors import GlmtuneError
from glmtune.families import Family
from glmtune.model.lora_targets import explicit_targets, resolve_targets

log = logging.getLogger("glmtune.train")


def quantization_config(cfg: ModelConfig, method: str) -> Any:
    """A ``BitsAndBytesConfig`` for QLoRA (``method: qlora`` defaults to 4-bit nf4 with double quantisation)."""
    bits = cfg.quantization_bit or (4 if method == "qlora" else None)
    if bits is None:
        return None
    if method != "qlora":
        raise GlmtuneError("model.quantization_bit needs method qlora (quantized weights cannot be trained directly)")
    from transformers import BitsAndBytesConfig

    compute = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(cfg.compute_dtype)
    if compute is None:
        compute = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if bits == 4:
        if cfg.quant_type not in ("nf4", "fp4"):
            raise GlmtuneError(f"model.quant_type {cfg.quant_type!r}: choose nf4 or fp4")
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.quant_type,
            bnb_4bit_use_double_quant=cfg.double_quant,
            bnb_4bit_compute_dtype=compute,
        )
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    raise GlmtuneError(f"model.quantization_bit {bits}: choose 4 or 8")


def resolve_lora_targets(model: Any, family: Family, names: list[str] | None) -> list[str]:
    """Native module names to adapt; official names (``query_key_value``...) and presets are translated per family."""
    return resolve_targets(model, family, names).modules


def apply_method(model: Any, family: Family, method: MethodConfig, gradient_checkpointing: bool) -> Any:
    """Make the right parameters trainable and wrap the model; returns the model to train."""
    return _APPLY[method.name](model, family, method, gradient_checkpointing)


def _apply_full(model: Any, family: Family, method: MethodConfig, gradient_checkpointing: bool) -> Any:
    for p in model.parameters():
        p.requires_grad = True
    return model


def _apply_lora(model: Any, family: Family, method: MethodConfig, gradient_checkpointing: bool) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if method.quantized:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
        _cpu_4bit_fix(model)
    targets = resolve_targets(model, family, method.lora_targets)
    dropout = method.lora_dropout
    if targets.parameters and dropout:
        log.warning("method.lora_dropout %s -> 0: peft's LoRA on expert parameters has no dropout", dropout)
        dropout = 0.0
    config = LoraConfig(
        r=method.lora_r,
        lora_alpha=method.lora_alpha,
        lora_dropout=dropout,
        task_type="CAUSAL_LM",
        **targets.peft_kwargs(),
    )
    with explicit_targets():
        model = get_peft_model(model, config)
    if gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def _cpu_4bit_fix(model: Any) -> None:
    """bitsandbytes' CPU 4-bit path breaks after an eval pass with the AVX512-bf16 kernel: turn that path off."""
    if torch.cuda.is_available():
        return
    for module in model.modules():
        weight = getattr(module, "weight", None)
        state = getattr(weight, "quant_state", None)
        is_4bit = state is not None or type(module).__name__ == "Linear4bit"
        if is_4bit and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _apply_ptuning(model: Any, family: Family, method: MethodConfig, gradient_checkpointing: bool) -> Any:
    if not family.supports_ptuning:
        raise GlmtuneError(f"method ptuning-v2: {family.title} has no P-Tuning v2 (it is a ChatGLM method); use lora")
    if family.architecture == "chatglm-v1":
        from glmtune.model.chatglm_v1.ptuning import add_prefix_v1

        return add_prefix_v1(model, method.pre_seq_len, method.prefix_projection)
    from glmtune.model.ptuning import add_prefix

    return add_prefix(model, method.pre_seq_len, method.prefix_projection)


def _apply_freeze(model: Any, family: Family, method: MethodConfig, gradient_checkpointing: bool) -> Any:
    """Train only the last N transformer layers (or modules whose name matches one of the given patterns)."""
    names = [n for n, _ in model.named_parameters()]
    if method.freeze_trainable_modules:
        patterns = [re.compile(p) for p in method.freeze_trainable_modules]
        chosen = {n for n in names if any(p.search(n) for p in patterns)}
        if not chosen:
            raise GlmtuneError(f"method.freeze_trainable_modules {method.freeze_trainable_modules} match no parameter")
    else:
        layer_ids = sorted({int(m.group(1)) for n in names if (m := re.search(r"layers\.(\d+)\.", n))})
        if not layer_ids:
            raise GlmtuneError("freeze: no numbered transformer layers found in this model")
        n = method.freeze_trainable_layers
        if n < 1 or n > len(layer_ids):
            raise GlmtuneError(f"method.freeze_trainable_layers {n}: the model has {len(layer_ids)} layers")
        keep = set(layer_ids[-n:])
        chosen = {p for p in names if (m := re.search(r"layers\.(\d+)\.", p)) and int(m.group(1)) in keep}
    for name, param in model.named_parameters():
        param.requires_grad = name in chosen
    return model


_APPLY = {
    "lora": _apply_lora,
    "qlora": _apply_lora,
    "ptuning-v2": _apply_ptuning,
    "freeze": _apply_freeze,
    "full": _apply_full,
}
"""Each method of ``config.schema.METHODS``: (model, family, method config, checkpointing) -> model to train."""


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts (DeepSpeed ZeRO-3 parameters by their full size, not their shard)."""
    size = lambda p: getattr(p, "ds_numel", None) or p.numel()  # noqa: E731
    total = sum(size(p) for p in model.parameters())
    trainable = sum(size(p) for p in model.parameters() if p.requires_grad)
    return trainable, total


def upcast_trainable(model: Any) -> None:
    """Keep trainable parameters in fp32 (as the official demo does), whatever the base dtype."""
    for p in model.parameters():
        if p.requires_grad and p.dtype in (torch.float16, torch.bfloat16):
            p.data = p.data.float()
