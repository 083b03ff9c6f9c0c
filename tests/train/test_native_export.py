"""Native families: a LoRA adapter merges into a plain transformers directory that loads without glmtune."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glmtune.infer.loading import load_for_inference
from glmtune.model.convert import save_model

TARGETS = {
    "glm4-0414": {"target_modules": ["q_proj", "v_proj"]},
    "glm4-moe": {  # the dense MLP, a shared expert and the routed experts' fused weights
        "target_modules": ["self_attn.q_proj", "mlp.gate_proj", "shared_experts.down_proj"],
        "target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"],
    },
}


def _random_adapter(base: Path, out: Path, targets: dict) -> None:
    from peft import LoraConfig, get_peft_model

    from glmtune.model.lora_targets import explicit_targets

    loaded = load_for_inference(base)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, task_type="CAUSAL_LM", **targets)
    with explicit_targets():
        get_peft_model(loaded.model, config).save_pretrained(str(out))


@pytest.mark.parametrize("variant", sorted(TARGETS))
def test_export_merges_into_a_plain_checkpoint(variant: str, tiny_factory, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tiny_factory(variant)
    _random_adapter(base, tmp_path / "lora", TARGETS[variant])
    with_adapter = load_for_inference(base, tmp_path / "lora")
    ids = torch.tensor([with_adapter.family.render_chat(with_adapter.tokenizer, [{"role": "user", "content": "你好"}])])
    with torch.no_grad():
        expected = with_adapter.model(input_ids=ids).logits
    out = save_model(load_for_inference(base, tmp_path / "lora", merge=True), tmp_path / "merged")
    assert not list(out.glob("*.py")) and (out / "chat_template.jinja").is_file()
    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    assert (
        tok.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True, return_dict=False)
        == ids[0].tolist()
    )
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-4)
    again = load_for_inference(out)
    assert again.family.name == with_adapter.family.name and again.layout == "native"
