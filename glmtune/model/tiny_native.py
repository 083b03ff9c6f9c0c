"""``make-tiny`` for the native families: a plain transformers checkpoint as the official HF repos ship it.

``config.json`` (the family's transformers config, tiny dimensions), ``generation_config.json`` (the stop ids),
``tokenizer.json`` + ``tokenizer_config.json`` + ``chat_template.jinja`` (glmtune's own template text of the
variant's style) and ``model.safetensors`` in the official key layout (transformers writes MoE experts one
module per expert, as the released checkpoints are). Weights: seeded N(0, std), norms 1, router biases 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from glmtune.errors import GlmtuneError
from glmtune.families.base import Variant
from glmtune.families.native import NativeFamily


def model_class(family: NativeFamily) -> Any:
    """The transformers class of ``family`` (a clear error when this transformers lacks it)."""
    import transformers

    cls = getattr(transformers, family.model_class, None)
    if cls is None:
        raise GlmtuneError(
            f"{family.title} needs transformers' {family.model_class} (transformers {transformers.__version__} "
            "has no such class; upgrade transformers)"
        )
    return cls


def write_tiny_native(
    out: Path, family: NativeFamily, variant: Variant, ranks_file: Path, fmt: str, seed: int, std: float
) -> None:
    from transformers import GenerationConfig

    from glmtune.tokenization.native import build_tiny_tokenizer, tiny_tokenizer_config

    style = family.style(variant.template)
    tok = build_tiny_tokenizer(ranks_file, family.hf_specials, style.jinja)
    added = tok.get_added_vocab()
    eos = added["<|endoftext|>"]
    stops = [added[t] for t in family.generation_stops if t in added]
    cls = model_class(family)
    settings = {**family.tiny, **variant.config_overrides}
    config = cls.config_class(
        vocab_size=(len(tok) + 15) // 16 * 16, pad_token_id=eos, eos_token_id=stops, bos_token_id=None, **settings
    )
    config.architectures = [family.model_class]
    config.dtype = "float32"
    model = cls(config)
    _seeded(model, seed, std)
    model.generation_config = GenerationConfig(eos_token_id=stops, pad_token_id=eos)
    _save_quietly(model, out)
    tok.backend_tokenizer.save(str(out / "tokenizer.json"))
    cfg = tiny_tokenizer_config(variant.name_or_path)
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    (out / "chat_template.jinja").write_text(style.jinja, encoding="utf-8")
    if fmt == "bin":
        from safetensors.torch import load_file

        state: dict[str, torch.Tensor] = {}
        for f in sorted(out.glob("*.safetensors")):
            state.update(load_file(str(f)))
            f.unlink()
        for index in out.glob("*.safetensors.index.json"):
            index.unlink()
        torch.save(dict(sorted(state.items())), out / "pytorch_model.bin")


def _save_quietly(model: Any, out: Path) -> None:
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(str(out))
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _seeded(model: Any, seed: int, std: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.zero_()
