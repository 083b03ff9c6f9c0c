"""MoE families: LoRA target presets (experts opt-in), the router auxiliary loss, and the peft rewrite pinned."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from glmtune.config.schema import MethodConfig
from glmtune.errors import GlmtuneError
from glmtune.families import get_family
from glmtune.model.load import load
from glmtune.model.lora_targets import explicit_targets, resolve_targets
from glmtune.model.tiny import make_tiny
from glmtune.train.methods import apply_method
from glmtune.train.router_loss import RouterAuxLoss

_DIRS: dict[str, Path] = {}


def tiny(variant: str) -> Path:
    if variant not in _DIRS:
        _DIRS[variant] = make_tiny(variant, Path(tempfile.mkdtemp()) / "t")
    return _DIRS[variant]


def _trained(model) -> set[str]:
    return {n.split(".lora_")[0].split(".modules_to_save")[0] for n, p in model.named_parameters() if p.requires_grad}


def test_default_targets_are_attention_and_dense_mlp() -> None:
    loaded = load(tiny("glm4-moe"))
    model = apply_method(loaded.model, loaded.family, MethodConfig(name="lora", lora_r=4), False)
    names = _trained(model)
    assert any("layers.0.mlp.gate_proj" in n for n in names) and any("self_attn.o_proj" in n for n in names)
    assert not any("experts" in n or "mlp.gate." in n or n.endswith("mlp.gate") for n in names)


@pytest.mark.parametrize("variant", ["glm4-moe", "glm4-moe-lite", "glm-moe-dsa"])
def test_experts_and_router_are_opt_in_and_learn(variant: str) -> None:
    loaded = load(tiny(variant))
    names = ["attention", "shared_experts", "experts", "router"]
    method = MethodConfig(name="lora", lora_r=4, lora_dropout=0.0, lora_targets=names)
    model = apply_method(loaded.model, loaded.family, method, False)
    trained = _trained(model)
    assert any(n.endswith("mlp.experts") for n in trained) and any(n.endswith("mlp.gate") for n in trained)
    assert any("shared_experts" in n for n in trained)
    aux = RouterAuxLoss(model, coef=0.5)
    assert aux.routers >= 1  # (a router trained in full is wrapped: its copy is hooked too)
    model.train()
    ids = torch.randint(0, 3000, (2, 12))
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    expert = next(p for n, p in model.named_parameters() if "experts" in n and "lora_B" in n)
    assert expert.grad is not None and expert.grad.abs().sum() > 0
    value = aux.pop_mean()
    assert value is not None and value > 0.5 and aux.pop_mean() is None


def test_unknown_targets_name_the_presets() -> None:
    loaded = load(tiny("glm4-moe"))
    with pytest.raises(GlmtuneError, match="presets are attention, dense_mlp, experts, router, shared_experts"):
        resolve_targets(loaded.model, loaded.family, ["nope"])
    mla = load(tiny("glm4-moe-lite"))
    assert "self_attn.kv_b_proj" in resolve_targets(mla.model, mla.family, ["attention"]).modules


def test_aux_loss_is_one_when_balanced() -> None:
    class TopkRouter(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(4, 4), None, torch.tensor([[0, 1], [2, 3], [0, 2], [1, 3]])

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.router = TopkRouter()

        def forward(self, x):
            self.router(x)
            return type("Out", (), {"loss": None})()

    model = Model().train()
    aux = RouterAuxLoss(model)
    model(torch.zeros(1))
    assert aux.pop_mean() == pytest.approx(1.0)


def test_peft_moe_rewrite_is_pinned() -> None:
    """glmtune switches off peft's transformers-4 MoE target rewrite (peft #3711): fail loudly when peft moves it."""
    from peft.tuners import tuners_utils
    from peft.utils import transformers_weight_conversion as conversion

    assert callable(conversion.convert_peft_config_for_transformers)
    source = Path(tuners_utils.__file__).read_text()
    assert "convert_peft_config_for_transformers(" in source, "peft no longer rewrites targets here: revisit"
    original = conversion.convert_peft_config_for_transformers
    with explicit_targets():
        assert conversion.convert_peft_config_for_transformers is not original
    assert conversion.convert_peft_config_for_transformers is original
    assert get_family("glm4-moe").lora_targets == ("attention", "dense_mlp")
