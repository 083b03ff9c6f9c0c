"""Loading original checkpoints safely, converting native <-> original exactly, and refusing bad input clearly."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import glmtune
from glmtune.errors import GlmtuneError
from glmtune.model.convert import convert
from glmtune.model.tiny import make_tiny

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny("chatglm3", tmp_path_factory.mktemp("c3") / "ckpt")


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny("glm4", tmp_path_factory.mktemp("g4") / "ckpt")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _tensors(directory: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(glob.glob(str(directory / "*.safetensors"))):
        out.update(load_file(f))
    return out


def test_never_imports_checkpoint_code(tiny3: Path, tmp_path: Path) -> None:
    ckpt = _copy(tiny3, tmp_path / "ckpt")
    marker = tmp_path / "imported"
    for name in ("modeling_chatglm.py", "tokenization_chatglm.py", "configuration_chatglm.py"):
        (ckpt / name).write_text(f"open({str(marker)!r}, 'w').write('x')\nraise RuntimeError('imported {name}')\n")
    loaded = glmtune.load(ckpt)
    assert loaded.family.name == "chatglm3"
    assert not marker.exists()


@pytest.mark.parametrize("which", ["tiny3", "tiny4"])
def test_round_trip_is_tensor_exact(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    src = request.getfixturevalue(which)
    native = convert(src, tmp_path / "native", to="native")
    back = convert(native, tmp_path / "original", to="original")
    a, b = _tensors(src), _tensors(back)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ca, cb = json.loads((src / "config.json").read_text()), json.loads((back / "config.json").read_text())
    assert {k: v for k, v in ca.items() if k != "transformers_version"} == {
        k: v for k, v in cb.items() if k != "transformers_version"
    }


@pytest.mark.parametrize("which", ["tiny3", "tiny4"])
def test_native_loads_in_plain_transformers(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = request.getfixturevalue(which)
    native = convert(src, tmp_path / "native", to="native")
    model = AutoModelForCausalLM.from_pretrained(native)  # no trust_remote_code
    tok = AutoTokenizer.from_pretrained(native)
    ours = glmtune.load(src)
    messages = [{"role": "system", "content": "简短回答。"}, {"role": "user", "content": "你好，介绍一下你自己"}]
    ids = ours.family.render_chat(ours.tokenizer, messages)
    plain = tok.apply_chat_template(messages, add_generation_prompt=True)
    plain = plain["input_ids"] if hasattr(plain, "keys") else plain
    assert plain == ids
    assert tok("Hello world")["input_ids"] == ours.tokenizer("Hello world")["input_ids"]
    gen = dict(max_new_tokens=12, do_sample=False)
    a = ours.model.generate(torch.tensor([ids]), **gen)
    b = model.generate(torch.tensor([ids]), **gen)
    assert a.tolist() == b.tolist()
    assert set(model.generation_config.eos_token_id) == set(ours.family.stop_token_ids(ours.tokenizer))


def test_bin_format_loads_with_weights_only(tmp_path: Path) -> None:
    ckpt = make_tiny("chatglm3", tmp_path / "bin", fmt="bin")
    st = make_tiny("chatglm3", tmp_path / "st")
    ids = torch.tensor([[4001, 4003, 100, 200, 300]])
    with torch.no_grad():
        a = glmtune.load(ckpt).model(ids).logits
        b = glmtune.load(st).model(ids).logits
    assert torch.equal(a, b)


def _corrupt(tiny3: Path, tmp_path: Path, how: str) -> Path:
    ckpt = _copy(tiny3, tmp_path / how)
    if how == "no-config":
        (ckpt / "config.json").unlink()
    elif how == "unknown-arch":
        cfg = json.loads((ckpt / "config.json").read_text())
        cfg["model_type"] = "llama"
        (ckpt / "config.json").write_text(json.dumps(cfg))
    elif how == "shape-mismatch":
        cfg = json.loads((ckpt / "config.json").read_text())
        cfg["ffn_hidden_size"] = 96
        (ckpt / "config.json").write_text(json.dumps(cfg))
    elif how == "truncated-shard":
        shard = ckpt / "model-00002-of-00002.safetensors"
        shard.write_bytes(shard.read_bytes()[:1000])
    elif how == "missing-shard":
        (ckpt / "model-00001-of-00002.safetensors").unlink()
    elif how == "no-tokenizer":
        (ckpt / "tokenizer.model").unlink()
    return ckpt


CORRUPTIONS = {
    "no-config": "config.json: missing",
    "unknown-arch": "not a ChatGLM checkpoint",
    "shape-mismatch": "does not match config.json",
    "truncated-shard": "model-00002-of-00002.safetensors",
    "missing-shard": "names missing file model-00001-of-00002.safetensors",
    "no-tokenizer": "tokenizer.model: missing",
}


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_bad_checkpoint_is_one_clear_error(tiny3: Path, tmp_path: Path, how: str) -> None:
    ckpt = _corrupt(tiny3, tmp_path, how)
    with pytest.raises(GlmtuneError, match=CORRUPTIONS[how]):
        glmtune.load(ckpt)
    dst = tmp_path / "out"
    with pytest.raises(GlmtuneError):
        convert(ckpt, dst)
    assert not dst.exists(), "a failed convert must not leave a half-written destination"
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_cli_error_is_one_line_exit_2(tiny3: Path, tmp_path: Path) -> None:
    ckpt = _corrupt(tiny3, tmp_path, "shape-mismatch")
    proc = subprocess.run(
        [sys.executable, "-m", "glmtune.cli", "convert", str(ckpt), str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr


def test_convert_refuses_existing_destination(tiny3: Path, tmp_path: Path) -> None:
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep.txt").write_text("precious")
    with pytest.raises(GlmtuneError, match="already exists"):
        convert(tiny3, tmp_path / "dst")
    assert (tmp_path / "dst" / "keep.txt").read_text() == "precious"


def test_padded_batches_match_unpadded_rows(tiny3: Path) -> None:
    """The sane default: a left-padded row generates exactly what it generates alone (official code differs)."""
    from glmtune.infer import Engine, GenerationParams

    engine = Engine(glmtune.load(tiny3))
    short = [{"role": "user", "content": "你好"}]
    long = [{"role": "user", "content": "请详细介绍一下北京的天气和历史，谢谢。"}]
    params = GenerationParams(max_new_tokens=10, do_sample=False)
    alone = [engine.generate([c], params)[0].text for c in (short, long)]
    together = [r.text for r in engine.generate([short, long], params)]
    assert together == alone


def test_gradient_checkpointing_with_left_padding(tiny3: Path) -> None:
    loaded = glmtune.load(tiny3, dtype="fp32")
    model = loaded.model
    batch = loaded.tokenizer(["你好", "今天北京的天气怎么样？"], padding="longest", return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}
    model.train()
    plain = model(**inputs).loss
    plain.backward()
    g1 = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
    model.zero_grad()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ckpt = model(**inputs).loss
    ckpt.backward()
    g2 = model.model.layers[0].self_attn.q_proj.weight.grad
    assert torch.allclose(plain, ckpt) and torch.allclose(g1, g2, atol=1e-6)


class _Evil:
    """A pickle that would run a shell command when unpickled without ``weights_only``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("family", ["chatglm", "chatglm3"])
def test_malicious_pickle_is_refused_for_safety(tmp_path: Path, family: str) -> None:
    ckpt = make_tiny(family, tmp_path / family, fmt="bin")
    marker = tmp_path / "code-ran"
    first = sorted(ckpt.glob("pytorch_model*.bin"))[0]
    torch.save({"transformer.word_embeddings.weight": _Evil(marker)}, first)
    with pytest.raises(GlmtuneError, match=r"refused for safety: the pickle holds objects other than tensors") as e:
        glmtune.load(ckpt)
    assert "system" in str(e.value) and "corrupt" not in str(e.value)
    if family == "chatglm":  # the server refuses to start, with one line and exit 2
        proc = subprocess.run(
            [sys.executable, "-m", "glmtune.cli", "serve", str(ckpt)], capture_output=True, text=True, cwd=REPO
        )
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and "refused for safety" in lines[0], proc.stderr
    assert not marker.exists(), "code from the checkpoint ran"
