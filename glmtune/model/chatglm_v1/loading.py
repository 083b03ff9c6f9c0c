"""Load / save ChatGLM-6B (v1) checkpoints in the original THUDM layout, and official P-Tuning v2 prefixes.

Nothing in a checkpoint directory is imported; ``.bin`` files load with ``weights_only=True``. The stored
``rotary_emb.inv_freq`` buffers are ignored (the model recomputes the fp16-rounded ones) and ``lm_head.weight`` is
tied to ``transformer.word_embeddings.weight`` as the official model ties them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from glmtune.errors import GlmtuneError
from glmtune.families import read_config
from glmtune.io import atomic_directory, atomic_write_text
from glmtune.model.chatglm_v1.configuration import ChatGLMv1Config
from glmtune.model.chatglm_v1.layers import rotary_inv_freq
from glmtune.model.chatglm_v1.modeling import ChatGLMv1ForCausalLM
from glmtune.model.checkpoint_files import find_weight_files, unreadable_weights

ROTARY_BUFFER = "attention.rotary_emb.inv_freq"
OFFICIAL_PREFIX = "transformer.prefix_encoder."
DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def _resolve_dtype(dtype: str | torch.dtype, config: dict[str, Any], where: Path) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        name = str(config.get("torch_dtype") or config.get("dtype") or "float32").replace("torch.", "")
        return DTYPES.get(name, torch.float32)
    if dtype not in DTYPES:
        raise GlmtuneError(f"{where}: dtype {dtype!r}: choose one of auto, float32, bfloat16, float16")
    return DTYPES[dtype]


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # legacy (non-zip) torch.save format cannot be memory-mapped
            if "mmap" not in str(e):
                raise
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt, not a weights file, or a pickle that needs more than tensors
        raise unreadable_weights(path, e) from None
    if not isinstance(state, dict):
        raise GlmtuneError(f"{path}: not a state dict of tensors")
    return state


def load_v1_model(
    directory: str | Path,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device | None = None,
    attn_implementation: str | None = None,
) -> ChatGLMv1ForCausalLM:
    """A ChatGLM-6B checkpoint directory (original or glmtune layout) as :class:`ChatGLMv1ForCausalLM`.

    ``dtype``: float32 / bfloat16 / float16, or ``auto`` for the checkpoint's ``torch_dtype``.
    """
    directory = Path(directory)
    raw = read_config(directory)
    config_path = directory / "config.json"
    try:
        config = ChatGLMv1Config.from_official_dict(raw)
        config.check_sizes(str(config_path))
    except (TypeError, ValueError) as e:
        raise GlmtuneError(f"{config_path}: {str(e).splitlines()[0]}") from None
    torch_dtype = _resolve_dtype(dtype, raw, config_path)
    pre_seq_len, projection = config.pre_seq_len, config.prefix_projection
    config.pre_seq_len = None  # the prefix is added after loading (it is usually not in a base checkpoint)
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    files = find_weight_files(directory)
    with torch.device("meta"):
        model = ChatGLMv1ForCausalLM(config)
    expected = {k: (tuple(v.shape), v) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    state: dict[str, torch.Tensor] = {}
    prefix_state: dict[str, torch.Tensor] = {}
    for path in files.files:
        for key, tensor in _read_file(path).items():
            if key.endswith(ROTARY_BUFFER) or key == "lm_head.weight":
                continue
            if key.startswith(OFFICIAL_PREFIX):
                prefix_state[key[len(OFFICIAL_PREFIX) :]] = tensor
                continue
            if key not in expected:
                raise GlmtuneError(f"{path}: {key}: unexpected tensor for ChatGLM-6B")
            if tuple(tensor.shape) != expected[key][0]:
                raise GlmtuneError(
                    f"{path}: {key}: shape {list(tensor.shape)} does not match config.json "
                    f"(expected {list(expected[key][0])})"
                )
            state[key] = tensor.to(torch_dtype)
    missing = [k for k in expected if k not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise GlmtuneError(f"{directory}: missing tensor {missing[0]}{more}")
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    model.config.dtype = torch_dtype
    model.config._name_or_path = model.name_or_path = str(directory)  # as from_pretrained sets them
    if pre_seq_len is not None:
        model.enable_ptuning(pre_seq_len, projection)
        if prefix_state:
            _load_prefix_state(model, prefix_state, directory)
    model.eval()
    return model.to(device) if device is not None else model


def _load_prefix_state(model: ChatGLMv1ForCausalLM, state: dict[str, torch.Tensor], where: Path) -> None:
    try:
        model.transformer.prefix_encoder.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        raise GlmtuneError(f"{where}: prefix does not fit this model: {str(e).strip().splitlines()[0]}") from None


def load_v1_prefix(model: ChatGLMv1ForCausalLM, ptuning_dir: str | Path) -> ChatGLMv1ForCausalLM:
    """Apply an official P-Tuning v2 checkpoint (``pytorch_model.bin`` with ``transformer.prefix_encoder.*`` and
    a ``config.json`` with ``pre_seq_len``/``prefix_projection``) as ``ptuning/main.py`` does, in place."""
    directory = Path(ptuning_dir)
    config = read_config(directory)
    if not config.get("pre_seq_len"):
        raise GlmtuneError(f"{directory / 'config.json'}: no pre_seq_len: not a P-Tuning v2 checkpoint")
    prefix, weights = read_official_prefix(directory)
    model.enable_ptuning(int(config["pre_seq_len"]), bool(config.get("prefix_projection", False)))
    _load_prefix_state(model, prefix, weights)
    return model


def read_official_prefix(directory: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The ``transformer.prefix_encoder.*`` tensors (names without that prefix) of the official trainer's
    ``pytorch_model.bin`` in ``directory``, and that file's path."""
    weights = directory / "pytorch_model.bin"
    if not weights.is_file():
        raise GlmtuneError(f"{weights}: missing (the official trainer saves the prefix encoder there)")
    state = _read_file(weights)
    prefix = {k[len(OFFICIAL_PREFIX) :]: v for k, v in state.items() if k.startswith(OFFICIAL_PREFIX)}
    if not prefix:
        raise GlmtuneError(f"{weights}: holds no {OFFICIAL_PREFIX}* tensors")
    return prefix, weights


def save_v1_prefix(model: ChatGLMv1ForCausalLM, directory: str | Path) -> Path:
    """Write the prefix as the official trainer does: ``pytorch_model.bin`` (only ``transformer.prefix_encoder.*``)
    and the full ``config.json`` with ``pre_seq_len``; files are replaced atomically, the directory is kept
    (it may be a trainer checkpoint holding other files)."""
    if model.transformer.prefix_encoder is None:
        raise GlmtuneError(f"{directory}: the model has no P-Tuning prefix to save")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        OFFICIAL_PREFIX + k: v.detach().cpu().contiguous()
        for k, v in model.transformer.prefix_encoder.state_dict().items()
    }
    config = model.config.to_official_dict()
    base = Path(str(getattr(model.config, "_name_or_path", "") or ""))
    if str(base) not in ("", ".") and base.is_dir():  # the official trainer records the base model here
        config["_name_or_path"] = str(base.resolve())
    tmp = directory / f".pytorch_model.bin.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, directory / "pytorch_model.bin")
    atomic_write_text(directory / "config.json", json.dumps(config, indent=2) + "\n")
    return directory


def save_v1_native(model: ChatGLMv1ForCausalLM, directory: str | Path) -> Path:
    """glmtune's native layout (``model_type: chatglm_v1``, ``model.safetensors``, prefix included if any)."""
    directory = Path(directory)
    model.config.architectures = ["ChatGLMv1ForCausalLM"]
    model.save_pretrained(str(directory), max_shard_size="2GB")
    return directory


def _original_state(model: ChatGLMv1ForCausalLM) -> dict[str, torch.Tensor]:
    """The original THUDM tensors: official names, ``lm_head.weight`` stored, fp16-rounded ``inv_freq`` buffers
    (and ``transformer.prefix_encoder.*`` when the model has a prefix, the official full-model-with-prefix layout)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state["lm_head.weight"] = state["transformer.word_embeddings.weight"].clone()
    cfg = model.config
    dim = cfg.head_dim // 2 if cfg.position_encoding_2d else cfg.head_dim
    for i in range(cfg.num_layers):
        state[f"transformer.layers.{i}.{ROTARY_BUFFER}"] = rotary_inv_freq(dim).clone()
    return state


def save_v1_original(model: ChatGLMv1ForCausalLM, directory: str | Path, max_shard_bytes: int = 2 * 1024**3) -> Path:
    """Write ``model`` in the original THUDM layout: official ``config.json``, sharded safetensors + index.

    A model loaded from the original files and saved here holds the same tensors (round trip tensor-exact).
    """
    state = _original_state(model)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = state[key]
        size += nbytes
    config = model.config.to_official_dict()  # keeps pre_seq_len / prefix_projection when there is a prefix
    config["torch_dtype"] = str(state["transformer.word_embeddings.weight"].dtype).replace("torch.", "")

    with atomic_directory(Path(directory), overwrite=True) as tmp:
        weight_map = {}
        for n, shard in enumerate(shards, start=1):
            name = f"model-{n:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(tmp / name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, name))
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return Path(directory)


__all__ = ["load_v1_model", "load_v1_prefix", "save_v1_native", "save_v1_original", "save_v1_prefix"]
