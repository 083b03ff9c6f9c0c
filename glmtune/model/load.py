"""``glmtune.load``: any ChatGLM checkpoint directory -> (native model, exact tokenizer, family).

Layouts: original THUDM ChatGLM2/3/GLM-4 (``model_type: chatglm``; loaded into transformers' ``GlmForCausalLM``
through a registered weight conversion), native HF ``Glm*`` directories, and ChatGLM-6B (v1, glmtune's own class).
Nothing in the directory is imported; ``.bin`` files load with ``weights_only=True``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from glmtune.errors import GlmtuneError
from glmtune.families import Family, detect_family, get_family, read_config
from glmtune.model.checkpoint_files import check_tensors, find_weight_files
from glmtune.tokenization import load_tokenizer

DTYPES = {
    "auto": "auto",
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


@dataclass
class LoadedModel:
    """A loaded checkpoint: the model, its exact tokenizer, its family and where it came from."""

    model: Any
    tokenizer: Any
    family: Family
    layout: str  # "original" or "native"
    path: Path


def resolve_dtype(dtype: str | torch.dtype, config: dict[str, Any]) -> torch.dtype:
    """``auto`` = the checkpoint's ``torch_dtype``; otherwise the named dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise GlmtuneError(f"--dtype {dtype!r}: choose one of auto, fp32, bf16, fp16")
    if DTYPES[dtype] == "auto":
        name = str(config.get("torch_dtype") or config.get("dtype") or "float32").replace("torch.", "")
        return {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(name, torch.float32)
    return DTYPES[dtype]


def load(
    path: str | Path,
    *,
    dtype: str | torch.dtype = "auto",
    device_map: str | dict | None = None,
    attn_implementation: str = "sdpa",
    family: str | None = None,
    quantization_config: Any = None,
    prefix: str | Path | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
) -> LoadedModel:
    """Load a checkpoint directory with its tokenizer.

    ``family`` overrides detection (ChatGLM2 and ChatGLM3 configs are identical apart from their name);
    ``prefix`` is an official-format P-Tuning v2 checkpoint directory to apply; ``quantization_config`` is a
    transformers ``BitsAndBytesConfig`` (QLoRA).
    """
    directory = Path(path)
    config = read_config(directory)
    fam = get_family(family) if family else detect_family(config, directory)
    torch_dtype = resolve_dtype(dtype, config)
    tokenizer = load_tokenizer(directory, fam, **(tokenizer_kwargs or {}))
    if fam.architecture == "chatglm-v1":
        model, layout = _load_v1(directory, config, torch_dtype, device_map)
    elif fam.architecture == "native":
        from glmtune.model.tiny_native import model_class

        cls = model_class(fam)  # type: ignore[arg-type]
        model, layout = _load_native(directory, torch_dtype, device_map, attn_implementation, quantization_config, cls)
    elif config.get("model_type") == "glm":
        model, layout = _load_native(directory, torch_dtype, device_map, attn_implementation, quantization_config)
    else:
        model, layout = _load_original(
            directory, config, fam, torch_dtype, device_map, attn_implementation, quantization_config
        )
    if fam.architecture != "native":
        _match_official_embedding(model)
    if prefix is not None:
        model = _attach_prefix(model, fam, Path(prefix))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = fam.stop_token_ids(tokenizer)
    model.config.glmtune_family = fam.name
    return LoadedModel(model=model, tokenizer=tokenizer, family=fam, layout=layout, path=directory)


def _quiet_loading() -> None:
    for name in ("transformers.modeling_utils", "transformers.distributed.tensor_parallel"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _load_original(
    directory: Path,
    config: dict[str, Any],
    fam: Family,
    dtype: torch.dtype,
    device_map: Any,
    attn: str,
    quantization_config: Any,
) -> tuple[Any, str]:
    from glmtune.model.glm_config import native_config
    from glmtune.model.glm_weights import ROTARY_BUFFER, OriginalLayoutGlm, expected_original_shapes

    native = native_config(config, fam.name, where=str(directory / "config.json"))
    files = find_weight_files(directory)
    check_tensors(files, expected_original_shapes(config), ignore=(ROTARY_BUFFER, "prefix_encoder"))
    _quiet_loading()
    try:
        model = OriginalLayoutGlm.from_pretrained(
            str(directory),
            config=native,
            dtype=dtype,
            device_map=device_map,
            attn_implementation=attn,
            quantization_config=quantization_config,
            use_safetensors=files.is_safetensors,
        )
    except (OSError, ValueError, RuntimeError) as e:
        raise GlmtuneError(f"{directory}: cannot load weights: {e}") from None
    # from here on it is a plain native model: saving it writes native names (our writer does the original layout)
    from transformers import GlmForCausalLM

    model.__class__ = GlmForCausalLM
    model._weight_conversions = None
    model.config.architectures = ["GlmForCausalLM"]
    if config.get("pre_seq_len"):  # the official full model with its P-Tuning prefix inside
        model = _embedded_prefix(model, files, config)
    return model, "original"


def _embedded_prefix(model: Any, files: Any, config: dict[str, Any]) -> Any:
    from safetensors import safe_open

    from glmtune.model.ptuning import OFFICIAL_PREFIX, _load_prefix_state, add_prefix

    state: dict[str, torch.Tensor] = {}
    for path in files.files:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                state.update(
                    {
                        k[len(OFFICIAL_PREFIX) :]: f.get_tensor(k)
                        for k in f.keys()  # noqa: SIM118
                        if k.startswith(OFFICIAL_PREFIX)
                    }
                )
        else:
            full = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            state.update({k[len(OFFICIAL_PREFIX) :]: v for k, v in full.items() if k.startswith(OFFICIAL_PREFIX)})
    if not state:
        return model
    add_prefix(model, int(config["pre_seq_len"]), bool(config.get("prefix_projection", False)))
    _load_prefix_state(model, state, files.directory)
    return model


def _load_native(
    directory: Path, dtype: torch.dtype, device_map: Any, attn: str, quantization_config: Any, cls: Any = None
):
    from transformers import GlmForCausalLM

    find_weight_files(directory)
    _quiet_loading()
    try:
        model = (cls or GlmForCausalLM).from_pretrained(
            str(directory),
            dtype=dtype,
            device_map=device_map,
            attn_implementation=attn,
            quantization_config=quantization_config,
        )
    except (OSError, ValueError, RuntimeError) as e:
        raise GlmtuneError(f"{directory}: cannot load native model: {e}") from None
    prefix_file = directory / "prefix_encoder.safetensors"
    if prefix_file.is_file():
        from glmtune.model.ptuning import attach_native_prefix

        model = attach_native_prefix(model, directory)
    return model, "native"


def _load_v1(directory: Path, config: dict[str, Any], dtype: torch.dtype, device_map: Any):
    from glmtune.model.chatglm_v1.loading import load_v1_model

    device = device_map if isinstance(device_map, str) and device_map != "auto" else None
    model = load_v1_model(directory, dtype=dtype, device=device)
    layout = "native" if config.get("model_type") == "chatglm_v1" else "original"
    return model, layout


def _attach_prefix(model: Any, fam: Family, prefix: Path) -> Any:
    """An official-format P-Tuning v2 checkpoint on top of the base model."""
    if fam.architecture == "chatglm-v1":
        from glmtune.model.chatglm_v1.loading import load_v1_prefix

        return load_v1_prefix(model, prefix)
    from glmtune.model.ptuning import attach_official_prefix

    return attach_official_prefix(model, prefix)


def _match_official_embedding(model: Any) -> None:
    """The official embedding has no ``padding_idx``: its pad row learns like any other (quirk 2)."""
    emb = model.get_input_embeddings()
    if getattr(emb, "padding_idx", None) is not None:
        emb.padding_idx = None
