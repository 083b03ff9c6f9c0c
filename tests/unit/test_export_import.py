"""Export (LoRA merge, P-Tuning prefix), import of official adapters, and their safety rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import glmtune
from glmtune.errors import GlmtuneError
from glmtune.infer import Engine, GenerationParams
from glmtune.infer.loading import load_for_inference
from glmtune.model.glm_weights import to_original_state_dict
from glmtune.model.tiny import make_tiny
from tests.conftest import fixtures_dir

IDS = torch.tensor([[4001, 4003, 4006, 100, 2000, 300, 4007, 55, 66]])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny("chatglm3", tmp_path_factory.mktemp("base") / "ckpt")


def make_adapter(base: Path, out: Path) -> Path:
    """A peft LoRA adapter with non-zero B (as after training) on every linear module of the family."""
    from peft import LoraConfig, get_peft_model

    loaded = glmtune.load(base)
    targets = sorted(
        {
            n.rsplit(".", 1)[-1]
            for n, m in loaded.model.named_modules()
            if isinstance(m, torch.nn.Linear) and "lm_head" not in n
        }
    )
    model = get_peft_model(loaded.model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    model.save_pretrained(str(out), save_embedding_layers=False)
    return out


@pytest.fixture(scope="module")
def adapter(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(base, tmp_path_factory.mktemp("adapter") / "lora")


def _logits(model, ids: torch.Tensor = IDS) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("family", ["chatglm", "chatglm2", "chatglm3", "glm4"])
@pytest.mark.parametrize("layout", ["native", "original"])
def test_merged_export_equals_adapter_model(tmp_path: Path, layout: str, family: str) -> None:
    from glmtune.commands.export import run_export

    base = make_tiny(family, tmp_path / "base")
    adapter = make_adapter(base, tmp_path / "lora")
    with_adapter = load_for_inference(base, adapter)
    out = tmp_path / f"merged-{layout}"
    run_export(adapter, out, layout=layout, base=None, dtype=None, force=False)
    merged = glmtune.load(out)
    ids = torch.tensor([with_adapter.family.render_chat(with_adapter.tokenizer, [{"role": "user", "content": "你好"}])])
    assert (_logits(with_adapter.model, ids) - _logits(merged.model, ids)).abs().max().item() <= 1e-4
    params = GenerationParams(max_new_tokens=12, do_sample=False)
    msgs = [{"role": "user", "content": "你好"}]
    assert Engine(with_adapter).generate([msgs], params)[0].text == Engine(merged).generate([msgs], params)[0].text
    if layout == "native" and family != "chatglm":  # ChatGLM-6B has no transformers class: glmtune's own
        from transformers import AutoModelForCausalLM

        plain = AutoModelForCausalLM.from_pretrained(out)
        assert (_logits(plain, ids) - _logits(merged.model, ids)).abs().max().item() == 0.0


def test_export_never_overwrites_without_force(adapter: Path, tmp_path: Path) -> None:
    from glmtune.commands.export import run_export

    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(GlmtuneError, match="already exists"):
        run_export(adapter, out, layout="native", base=None, dtype=None, force=False)
    assert (out / "keep").read_text() == "x"
    run_export(adapter, out, layout="native", base=None, dtype=None, force=True)
    assert not (out / "keep").exists() and (out / "config.json").is_file()


def _official_adapter(base: Path, out: Path, r: int = 4, alpha: int = 16) -> dict[str, torch.Tensor]:
    """An adapter as the official scripts save it: peft names on the ORIGINAL modules (fused query_key_value)."""
    cfg = json.loads((base / "config.json").read_text())
    h, kv = cfg["hidden_size"], cfg["kv_channels"]
    qkv = cfg["num_attention_heads"] * kv + 2 * cfg["multi_query_group_num"] * kv
    gen = torch.Generator().manual_seed(1)
    shapes = {
        "self_attention.query_key_value": (qkv, h),
        "self_attention.dense": (h, h),
        "mlp.dense_h_to_4h": (2 * cfg["ffn_hidden_size"], h),
        "mlp.dense_4h_to_h": (h, cfg["ffn_hidden_size"]),
    }
    weights = {}
    for layer in range(cfg["num_layers"]):
        for module, (rows, cols) in shapes.items():
            key = f"base_model.model.transformer.encoder.layers.{layer}.{module}"
            weights[f"{key}.lora_A.weight"] = torch.randn(r, cols, generator=gen) * 0.1
            weights[f"{key}.lora_B.weight"] = torch.randn(rows, r, generator=gen) * 0.1
    out.mkdir(parents=True)
    save_file(weights, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "task_type": "CAUSAL_LM",
                "r": r,
                "lora_alpha": alpha,
                "lora_dropout": 0.0,
                "target_modules": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
                "base_model_name_or_path": str(base),
                "bias": "none",
                "fan_in_fan_out": False,
            }
        )
    )
    return weights


def test_official_lora_import_equals_merging_in_original_layout(base: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    weights = _official_adapter(base, tmp_path / "official")
    scale = 16 / 4
    original = {}
    for f in sorted(base.glob("*.safetensors")):
        original.update(load_file(str(f)))
    expected = dict(original)
    for key in {k.rsplit(".lora_", 1)[0] for k in weights}:
        name = key.replace("base_model.model.", "") + ".weight"
        a, b = weights[f"{key}.lora_A.weight"], weights[f"{key}.lora_B.weight"]
        expected[name] = original[name] + scale * (b @ a)
    merged = load_for_inference(base, tmp_path / "official", merge=True).model
    ours = to_original_state_dict(merged.state_dict(), merged.config.num_hidden_layers)
    for name, value in expected.items():
        if name in ours:
            assert torch.allclose(ours[name], value, atol=1e-6), name
    assert "transformer.encoder.layers.0.self_attention.query_key_value.weight" in ours


def test_official_ptuning_checkpoint_chat_predict_export(tmp_path: Path) -> None:
    fx = fixtures_dir("model", "chatglm3")
    loaded = load_for_inference(fx / "ckpt", fx / "ptuning-proj0", dtype="fp32")
    reference = _logits(loaded.model, torch.tensor([[4001, 4003, 385, 3618]]))
    reply, _ = Engine(loaded).chat("Hello", params=GenerationParams(max_new_tokens=6, do_sample=False))
    assert isinstance(reply.text, str)
    for layout in ("native", "original"):
        from glmtune.model.convert import save_model

        out = save_model(loaded, tmp_path / layout, layout=layout)
        again = glmtune.load(out, dtype="fp32")
        assert hasattr(again.model, "prefix_encoder")
        diff = (_logits(again.model, torch.tensor([[4001, 4003, 385, 3618]])) - reference).abs().max().item()
        assert diff <= 1e-5, layout


def test_adapter_for_another_base_is_refused(adapter: Path) -> None:
    other = fixtures_dir("model", "chatglm3", "ckpt")  # hidden size 32, the adapter was made for 64
    with pytest.raises(GlmtuneError, match="does not fit this base model"):
        load_for_inference(other, adapter)


@pytest.mark.parametrize("family", ["chatglm", "chatglm2", "chatglm3", "glm4"])
def test_ptuning_checkpoint_round_trips_every_family(family: str, tmp_path: Path) -> None:
    """A P-Tuning v2 prefix saved in the official format loads for chat and exports in both layouts."""
    from glmtune.config.schema import MethodConfig
    from glmtune.model.convert import save_model
    from glmtune.model.export import save_prefix_checkpoint
    from glmtune.train.methods import apply_method

    base = make_tiny(family, tmp_path / "base")
    loaded = glmtune.load(base, dtype="fp32")
    model = apply_method(loaded.model, loaded.family, MethodConfig(name="ptuning-v2", pre_seq_len=4), False)
    torch.manual_seed(0)
    for p in model.prefix_encoder.parameters():
        p.data.normal_(0, 0.5)
    model.eval()
    ids = torch.tensor([loaded.family.render_chat(loaded.tokenizer, [{"role": "user", "content": "你好"}])])
    reference = _logits(model, ids)
    save_prefix_checkpoint(model, tmp_path / "prefix", loaded.family)
    again = load_for_inference(base, tmp_path / "prefix", dtype="fp32")
    assert (_logits(again.model, ids) - reference).abs().max().item() <= 1e-5
    Engine(again).chat("你好", params=GenerationParams(max_new_tokens=4, do_sample=False))
    for layout in ("native", "original"):
        out = save_model(again, tmp_path / layout, layout=layout)
        exported = glmtune.load(out, dtype="fp32")
        assert (_logits(exported.model, ids) - reference).abs().max().item() <= 1e-5, layout
