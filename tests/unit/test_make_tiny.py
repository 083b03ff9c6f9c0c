"""make-tiny: deterministic original-layout checkpoints that match the official layout (keys, names, shapes)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from glmtune.families import VARIANTS
from glmtune.model.glm_weights import expected_original_shapes
from glmtune.model.tiny import make_tiny
from tests.conftest import fixtures_dir

GLM_VARIANTS = [v for v, (f, _) in VARIANTS.items() if f.architecture == "glm"]


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_byte_identical_across_runs(tmp_path: Path, variant: str, fmt: str) -> None:
    a = make_tiny(variant, tmp_path / "a", fmt=fmt)
    b = make_tiny(variant, tmp_path / "b", fmt=fmt)
    assert _digest(a) == _digest(b)
    assert not list(a.glob("*.py"))


def _tensors(directory: Path) -> dict[str, tuple[int, ...]]:
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    shapes = {}
    for name in sorted(set(index["weight_map"].values())):
        with safe_open(str(directory / name), framework="pt") as f:
            shapes.update({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})  # noqa: SIM118
    assert set(shapes) == set(index["weight_map"])
    return shapes


@pytest.mark.parametrize("variant", GLM_VARIANTS)
def test_layout_matches_official(tmp_path: Path, variant: str) -> None:
    family = VARIANTS[variant][0]
    ours = make_tiny(variant, tmp_path / "ckpt")
    ref_dir = fixtures_dir("model", "glm4" if family.name == "glm4" else "chatglm3", "ckpt")
    ref_cfg = json.loads((ref_dir / "config.json").read_text())
    cfg = json.loads((ours / "config.json").read_text())
    assert set(ref_cfg) - {"rope_ratio"} <= set(cfg), "official config keys missing"
    assert cfg["architectures"] == ["ChatGLMModel"] and cfg["model_type"] == "chatglm"
    assert (ours / "tokenizer.model").is_file() and (ours / "tokenizer_config.json").is_file()
    shapes = _tensors(ours)
    expected = expected_original_shapes(cfg)
    assert {k: v for k, v in shapes.items() if k in expected} == expected
    if (ref_dir / "model.safetensors.index.json").is_file():
        ref_names = set(_tensors(ref_dir))
        assert set(shapes) == ref_names, "tensor names differ from the official checkpoint"
    rope = cfg.get("rope_ratio")
    assert rope == VARIANTS[variant][1].config_overrides.get("rope_ratio")


def test_weights_are_not_flat(tmp_path: Path) -> None:
    ckpt = make_tiny("chatglm3", tmp_path / "c")
    with safe_open(str(ckpt / "model-00002-of-00002.safetensors"), framework="pt") as f:
        w = f.get_tensor("transformer.encoder.layers.0.self_attention.query_key_value.weight")
    assert 0.15 < float(w.std()) < 0.25
    assert not torch.allclose(w, torch.zeros_like(w))


def test_refuses_existing_directory(tmp_path: Path) -> None:
    from glmtune.errors import GlmtuneError

    (tmp_path / "x").mkdir()
    with pytest.raises(GlmtuneError, match="already exists"):
        make_tiny("chatglm3", tmp_path / "x")
