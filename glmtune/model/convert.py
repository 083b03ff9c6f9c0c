"""``glmtune convert``: native HF directory <-> original THUDM layout, tensor-exact, written atomically.

native   = ``GlmForCausalLM`` safetensors + config, ``generation_config.json`` (family stop ids), ``tokenizer.json``
           (+ chat template) for plain transformers, and the original ``tokenizer.model`` for glmtune's exact
           tokenizer. Loads in ``AutoModelForCausalLM``/``AutoTokenizer`` without ``trust_remote_code``.
original = official ``config.json`` keys, fused ``query_key_value``, ``transformer.*`` names, sharded safetensors
           with index (or ``pytorch_model.bin``), ``tokenizer.model`` + ``tokenizer_config.json``.
ChatGLM-6B's native directory is glmtune's own class (transformers has none): glmtune loads it, plain
transformers does not (a warning says so).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from glmtune.errors import GlmtuneError, GlmtuneWarning
from glmtune.io import atomic_directory
from glmtune.model.load import LoadedModel
from glmtune.model.shards import write_weights

MAX_SHARD_BYTES = 2 * 1024**3
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def save_model(
    loaded: LoadedModel,
    dst: Path,
    layout: str = "native",
    dtype: str | None = None,
    force: bool = False,
    fmt: str = "safetensors",
) -> Path:
    """Write ``loaded`` to ``dst`` in ``layout``; ``dst`` appears only once complete."""
    if layout not in ("native", "original"):
        raise GlmtuneError(f"--layout/--to {layout!r}: choose native or original")
    if dtype is not None and dtype not in DTYPES:
        raise GlmtuneError(f"--dtype {dtype!r}: choose fp32, bf16 or fp16")
    if loaded.family.architecture == "native" and layout != "native":
        raise GlmtuneError(
            f"{loaded.family.title} checkpoints are native transformers directories: use --layout native"
        )
    model = loaded.model
    if dtype is not None:
        model = model.to(DTYPES[dtype])
    with atomic_directory(Path(dst), overwrite=force) as tmp:
        if loaded.family.architecture == "chatglm-v1":
            _save_v1(loaded, model, tmp, layout)
        elif loaded.family.architecture == "native":
            _save_plain(loaded, model, tmp)
        elif layout == "native":
            _save_native(loaded, model, tmp)
        else:
            _save_original(loaded, model, tmp, fmt)
    if loaded.family.architecture == "chatglm-v1" and layout == "native":
        warnings.warn(
            f"{dst}: transformers has no ChatGLM-6B class, so this native directory loads with glmtune (glmtune "
            "chat/serve/export, glmtune.load), not with plain AutoModelForCausalLM; for other tools keep the "
            "original layout (--to original), which loads with THUDM's modeling code (trust_remote_code)",
            GlmtuneWarning,
            stacklevel=2,
        )
    return Path(dst)


def _save_native(loaded: LoadedModel, model: Any, out: Path) -> None:
    from glmtune.tokenization.fast_export import build_fast_tokenizer

    prefix = getattr(model, "prefix_encoder", None)
    model.config.architectures = ["GlmForCausalLM"]
    model.config.glmtune_family = loaded.family.name
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(("prefix_encoder.", "prefix_dropout"))}
    model.save_pretrained(str(out), state_dict=state, save_original_format=False, max_shard_size="2GB")
    if prefix is not None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in prefix.state_dict().items()}, str(out / "prefix_encoder.safetensors"))
        cfg = json.loads((out / "config.json").read_text())
        cfg.update(pre_seq_len=model.config.pre_seq_len, prefix_projection=bool(model.config.prefix_projection))
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    _write_generation_config(loaded, out)
    build_fast_tokenizer(loaded.tokenizer, loaded.family).save_pretrained(str(out))
    loaded.tokenizer.save_vocabulary(str(out))


def _save_plain(loaded: LoadedModel, model: Any, out: Path) -> None:
    """A native family's model as its official HF repos ship it (MoE experts one module per expert)."""
    model.config.glmtune_family = loaded.family.name
    model.save_pretrained(str(out), max_shard_size="2GB")
    _write_generation_config(loaded, out)
    loaded.tokenizer.save_pretrained(str(out))


def _write_generation_config(loaded: LoadedModel, out: Path) -> None:
    from transformers import GenerationConfig

    tok = loaded.tokenizer
    GenerationConfig(
        eos_token_id=loaded.family.stop_token_ids(tok),
        pad_token_id=tok.pad_token_id,
        do_sample=True,
        temperature=0.8,
        top_p=0.8,
    ).save_pretrained(str(out))


def _save_original(loaded: LoadedModel, model: Any, out: Path, fmt: str) -> None:
    from glmtune.model.glm_config import original_config
    from glmtune.model.glm_weights import ROTARY_BUFFER, rotary_inv_freq, to_original_state_dict
    from glmtune.model.tiny import AUTO_MAP, tokenizer_config

    cfg = original_config(model.config, family=loaded.family)
    cfg["auto_map"] = AUTO_MAP
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(("prefix_encoder.", "prefix_dropout"))}
    weights = to_original_state_dict(state, model.config.num_hidden_layers)
    weights[ROTARY_BUFFER] = rotary_inv_freq(cfg, next(iter(weights.values())).dtype)
    prefix = getattr(model, "prefix_encoder", None)
    if prefix is not None:  # the official full-model-with-prefix layout
        weights.update({f"transformer.prefix_encoder.{k}": v for k, v in prefix.state_dict().items()})
        cfg.update(pre_seq_len=model.config.pre_seq_len, prefix_projection=bool(model.config.prefix_projection))
    weights = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    write_weights(out, weights, fmt=fmt, shards=None, max_shard_bytes=MAX_SHARD_BYTES)
    (out / "config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tok_cfg = tokenizer_config(loaded.family, cfg.get("_name_or_path") or "model")
    if loaded.family.checkpoint_template and getattr(loaded.tokenizer, "chat_template", None):
        tok_cfg["chat_template"] = loaded.tokenizer.chat_template
    (out / "tokenizer_config.json").write_text(
        json.dumps(tok_cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    loaded.tokenizer.save_vocabulary(str(out))


def _save_v1(loaded: LoadedModel, model: Any, out: Path, layout: str) -> None:
    from glmtune.model.chatglm_v1 import loading as v1

    if layout == "original":
        v1.save_v1_original(model, out)
    else:
        v1.save_v1_native(model, out)
    src_cfg = loaded.path / "tokenizer_config.json"
    if src_cfg.is_file():
        (out / "tokenizer_config.json").write_text(src_cfg.read_text(encoding="utf-8"), encoding="utf-8")
    loaded.tokenizer.save_vocabulary(str(out))


def convert(
    src: str | Path,
    dst: str | Path,
    to: str = "native",
    dtype: str | None = None,
    family: str | None = None,
    force: bool = False,
    fmt: str = "safetensors",
) -> Path:
    """Load ``src`` (any supported layout) and write it to ``dst`` in layout ``to``."""
    from glmtune.model.load import load

    loaded = load(src, dtype="auto", family=family)
    return save_model(loaded, Path(dst), layout=to, dtype=dtype, force=force, fmt=fmt)
