"""LoRA adapters: load glmtune/peft adapters, and import adapters trained by the official scripts.

Official ChatGLM2/3/GLM-4 adapters target the fused ``query_key_value`` (and ``dense``, ``dense_h_to_4h``,
``dense_4h_to_h``). A LoRA delta on the fused projection is ``B @ A`` with ``B``'s rows in q|k|v order, so the
native adapter is exact: ``q/k/v_proj.lora_A = A`` and ``lora_B`` = the q, k or v rows of ``B``.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from glmtune.errors import GlmtuneError, GlmtuneWarning
from glmtune.families import Family, detect_family, get_family, read_config

_FUSED = "query_key_value"
_OFFICIAL_KEY = re.compile(
    r"^(?P<pre>.*?)transformer\.encoder\.layers\.(?P<layer>\d+)\.(?P<block>self_attention|mlp)\."
    r"(?P<module>query_key_value|dense|dense_h_to_4h|dense_4h_to_h)\.(?P<rest>lora_[AB](?:\.default)?\.weight)$"
)
_RENAME = {"dense": "self_attn.o_proj", "dense_h_to_4h": "mlp.gate_up_proj", "dense_4h_to_h": "mlp.down_proj"}


def read_adapter(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(adapter_config.json, adapter weights) of a peft adapter directory; ``.bin`` read with weights_only."""
    cfg_path = directory / "adapter_config.json"
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GlmtuneError(f"{cfg_path}: missing") from None
    except json.JSONDecodeError as e:
        raise GlmtuneError(f"{cfg_path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if (directory / "adapter_model.safetensors").is_file():
        from safetensors.torch import load_file

        weights = load_file(str(directory / "adapter_model.safetensors"))
    elif (directory / "adapter_model.bin").is_file():
        weights = torch.load(str(directory / "adapter_model.bin"), map_location="cpu", weights_only=True)
    else:
        raise GlmtuneError(f"{directory}: no adapter_model.safetensors or adapter_model.bin")
    return config, weights


def is_official_adapter(config: dict[str, Any], family: Family) -> bool:
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    return family.architecture == "glm" and any(
        t in family.official_modules and t not in ("q_proj", "k_proj", "v_proj") for t in targets
    )


def convert_official_adapter(weights: dict[str, torch.Tensor], model_config: Any) -> dict[str, torch.Tensor]:
    """Official-name LoRA tensors -> native-name tensors (fused qkv split by rows of ``lora_B``)."""
    q = model_config.num_attention_heads * model_config.head_dim
    kv = model_config.num_key_value_heads * model_config.head_dim
    out: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        m = _OFFICIAL_KEY.match(key)
        if m is None:
            raise GlmtuneError(f"adapter tensor {key}: not an official ChatGLM LoRA weight name")
        base = f"{m['pre']}model.layers.{m['layer']}."
        rest = m["rest"].replace(".default", "")
        if m["module"] != _FUSED:
            out[f"{base}{_RENAME[m['module']]}.{rest}"] = tensor
            continue
        if rest.startswith("lora_A"):
            for p in ("q", "k", "v"):
                out[f"{base}self_attn.{p}_proj.{rest}"] = tensor.clone()
        else:
            if tensor.shape[0] != q + 2 * kv:
                raise GlmtuneError(f"adapter tensor {key}: {tensor.shape[0]} rows, the model's qkv has {q + 2 * kv}")
            for p, part in zip(("q", "k", "v"), torch.split(tensor, [q, kv, kv], dim=0), strict=False):
                out[f"{base}self_attn.{p}_proj.{rest}"] = part.contiguous()
    return out


def native_targets(targets: list[str], family: Family) -> list[str]:
    names: list[str] = []
    for t in targets:
        names += list(family.official_modules.get(t, (t,)))
    return list(dict.fromkeys(names))


def apply_lora_adapter(model: Any, directory: Path, family: Family, merge: bool = False) -> Any:
    """``model`` with the adapter in ``directory`` (glmtune/peft or official names); merged when asked."""
    from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict

    config, weights = read_adapter(directory)
    try:
        if is_official_adapter(config, family):
            targets = config.get("target_modules")
            targets = [targets] if isinstance(targets, str) else list(targets)
            lora = LoraConfig(
                r=config["r"],
                lora_alpha=config.get("lora_alpha", 8),
                lora_dropout=config.get("lora_dropout", 0.0),
                task_type="CAUSAL_LM",
                target_modules=native_targets(targets, family),
            )
            peft_model = get_peft_model(model, lora)
            result = set_peft_model_state_dict(peft_model, convert_official_adapter(weights, model.config))
            if result.unexpected_keys:
                raise GlmtuneError(f"{directory}: adapter tensors do not fit this model: {result.unexpected_keys[0]}")
        else:
            from glmtune.model.lora_targets import explicit_targets

            with explicit_targets():
                peft_model = PeftModel.from_pretrained(model, str(directory))
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GlmtuneError(f"{directory}: adapter does not fit this base model: {first}") from None
    peft_model.eval()
    return peft_model.merge_and_unload() if merge else peft_model


# ---------------------------------------------------------------------------------------------------- base model
BASE_FILE = "glmtune_adapter.json"
"""Written next to every adapter / P-Tuning checkpoint glmtune trains: the family and base it was trained on."""


def _config_digest(model_dir: Path) -> str | None:
    cfg = Path(model_dir) / "config.json"
    return hashlib.sha256(cfg.read_bytes()).hexdigest()[:16] if cfg.is_file() else None


def base_record(model_dir: Path, family: Family) -> dict[str, Any]:
    """What an adapter remembers of its base model: family, directory, a digest of its config.json."""
    return {"family": family.name, "base": str(Path(model_dir).resolve()), "base_config": _config_digest(model_dir)}


_SHAPE = ("padded_vocab_size", "vocab_size", "num_layers", "num_hidden_layers", "hidden_size")


def _trained_on(adapter_dir: Path, model_dir: Path) -> tuple[str | None, str | None, str | None]:
    """(family, base directory, base config digest) an adapter was trained on, as far as it says. Without a
    glmtune record the family comes from a config, which cannot tell ChatGLM2 from ChatGLM3: it is only given
    when that config's shape differs from the model's too."""
    record = adapter_dir / BASE_FILE
    if record.is_file():
        data = json.loads(record.read_text(encoding="utf-8"))
        return data.get("family"), data.get("base"), data.get("base_config")
    try:
        if (adapter_dir / "adapter_config.json").is_file():  # a peft adapter written elsewhere: its named base
            base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
            config_dir = Path(base) if base and Path(base).is_dir() else None
        else:  # a P-Tuning checkpoint: the full model config
            config_dir, base = adapter_dir, read_config(adapter_dir).get("_name_or_path")
        if config_dir is None:
            return None, base, None
        config, mine = read_config(config_dir), read_config(model_dir)
        if all(config.get(k) == mine.get(k) for k in _SHAPE):
            return None, base, None
        return detect_family(config, config_dir).name, base, None
    except (GlmtuneError, json.JSONDecodeError, OSError):
        return None, None, None


def check_base(adapter_dir: Path, model_dir: Path, family: Family) -> None:
    """Refuse an adapter trained on another family; warn when it was trained on another base model."""
    trained, base, digest = _trained_on(Path(adapter_dir), Path(model_dir))
    if trained and trained != family.name:
        raise GlmtuneError(
            f"{adapter_dir}: trained on a {get_family(trained).title} model ({base}); {model_dir} is "
            f"{family.title}: the adapter does not apply to it"
        )
    if not base or not Path(base).is_dir() or Path(base).resolve() == Path(model_dir).resolve():
        return
    same = digest is not None and digest == _config_digest(model_dir)
    warnings.warn(
        f"{adapter_dir}: trained on {base}, applied to {model_dir}"
        + (" (same config.json: a copy, or another checkpoint of the same shape)" if same else " (a different base)"),
        GlmtuneWarning,
        stacklevel=2,
    )
