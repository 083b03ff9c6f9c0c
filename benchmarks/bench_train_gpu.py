"""GPU training benchmark: ChatGLM3-6B- and GLM-4-9B-shape models with random weights (no download), one JSON line.

    python benchmarks/bench_train_gpu.py --json                 # the whole matrix on one CUDA GPU
    python benchmarks/bench_train_gpu.py --json --smoke         # a tiny shape on CPU (what the tests run)

Per shape:

* LoRA, bf16 (``configs/<family>/lora.yaml``'s method, batch 4 x seq 1024), with and without packing and gradient
  checkpointing: tokens/s, MFU, peak memory;
* QLoRA 4-bit (``configs/<family>/qlora.yaml``: nf4, double quantisation, r 64; batch 1 x seq 1024, gradient
  checkpointing): peak memory, tokens/s;
* P-Tuning v2 at the official ChatGLM3 finetune_demo settings (``pre_seq_len`` 128, batch 4, 256 input + 512 output
  tokens), with and without gradient checkpointing: peak memory, tokens/s.

The samples are random token ids with lengths drawn like chat data (log-normal, median ~ a third of the row, capped
at the row), the same for every case. Without packing a batch is padded to its longest sample; with packing the
samples are first packed into rows of ``seq`` tokens (:func:`glmtune.data.pack.pack_groups`) and a batch of rows is
flattened by glmtune's collator (no attention across samples). tokens/s counts real (non-pad) tokens.
The model, method and collators are glmtune's own (``glmtune.train.methods``, ``glmtune.data.collate``); the loop
is forward/backward/AdamW under bf16 autocast, trainable parameters in fp32, as ``glmtune train`` does.

MFU (PaLM convention): model FLOPs per sample of n tokens = 6 * N * n + 12 * layers * hidden * n^2 (N = parameters
of all matmuls, lm_head included, embeddings not; gradient-checkpointing recomputation not counted), whatever the
method, divided by the GPU's dense bf16 peak (``--peak-tflops``; H100/H200 SXM 989, A100 312, detected by name).
Peak memory is ``torch.cuda.max_memory_allocated`` per case.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# original THUDM config.json fields (glmtune maps them to GlmConfig exactly as when it loads the real checkpoints)
SHAPES: dict[str, dict[str, Any]] = {
    "chatglm3-6b": dict(
        family="chatglm3",
        hidden_size=4096,
        ffn_hidden_size=13696,
        num_layers=28,
        num_attention_heads=32,
        multi_query_group_num=2,
        kv_channels=128,
        padded_vocab_size=65024,
        seq_length=8192,
    ),
    "glm4-9b": dict(
        family="glm4",
        hidden_size=4096,
        ffn_hidden_size=13696,
        num_layers=40,
        num_attention_heads=32,
        multi_query_group_num=2,
        kv_channels=128,
        padded_vocab_size=151552,
        seq_length=131072,
        rope_ratio=500,
    ),
    "tiny": dict(
        family="chatglm3",
        hidden_size=64,
        ffn_hidden_size=128,
        num_layers=2,
        num_attention_heads=4,
        multi_query_group_num=2,
        kv_channels=16,
        padded_vocab_size=4016,
        seq_length=2048,
    ),
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0}


def original_config(shape: dict[str, Any]) -> dict[str, Any]:
    cfg = {k: v for k, v in shape.items() if k != "family"}
    cfg.update(model_type="chatglm", layernorm_epsilon=1e-5, add_qkv_bias=True, multi_query_attention=True)
    cfg.update(pad_token_id=0, eos_token_id=2, _name_or_path=f"random-{shape['family']}")
    return cfg


def build_model(shape: dict[str, Any], device: str, dtype: torch.dtype) -> Any:
    """A random-weight ``GlmForCausalLM`` of this shape, built directly on ``device``."""
    from transformers import GlmForCausalLM

    from glmtune.model.glm_config import native_config

    config = native_config(original_config(shape), shape["family"])
    torch.manual_seed(0)
    with torch.device(device):
        model = GlmForCausalLM._from_config(config, dtype=dtype)
    model.config.use_cache = False
    return model


def quantized_model(shape: dict[str, Any], workdir: Path, device: str) -> Any:
    """The 4-bit model as QLoRA loads it: the random bf16 weights saved once, then ``glmtune.load`` with the
    bitsandbytes config of ``glmtune train``."""
    import glmtune
    from glmtune.config.schema import ModelConfig
    from glmtune.train.methods import quantization_config

    path = workdir / f"{shape['family']}-{shape['num_layers']}x{shape['hidden_size']}"
    if not (path / "config.json").is_file():
        model = build_model(shape, device, torch.bfloat16 if device == "cuda" else torch.float32)
        model.save_pretrained(str(path))
        del model
        _free()
        _tokenizer_files(shape["family"], path)
    quant = quantization_config(ModelConfig(quantization_bit=4, quant_type="nf4", double_quant=True), "qlora")
    loaded = glmtune.load(str(path), dtype="bf16" if device == "cuda" else "fp32", quantization_config=quant,
                          device_map=device)  # fmt: skip
    loaded.model.config.use_cache = False
    return loaded.model


def _tokenizer_files(family: str, path: Path) -> None:
    """glmtune.load reads a tokenizer beside the weights: the tiny one of the family (ids are random anyway)."""
    import shutil

    from glmtune.model.tiny import make_tiny

    with tempfile.TemporaryDirectory() as tmp:
        tiny = make_tiny(family, Path(tmp) / "t")
        for f in tiny.iterdir():
            if f.name.startswith("tokenizer"):
                shutil.copy(f, path / f.name)


def method_config(family: str, name: str, pre_seq_len: int = 128) -> Any:
    """The ``method`` section of the shipped example config (ptuning: the official pre_seq_len)."""
    import yaml

    from glmtune.config.schema import MethodConfig

    file = {"lora": "lora", "qlora": "qlora", "ptuning-v2": "ptuning-v2"}[name]
    section = yaml.safe_load((REPO / "configs" / family / f"{file}.yaml").read_text(encoding="utf-8"))["method"]
    cfg = MethodConfig(**section)
    if name == "ptuning-v2":
        cfg.pre_seq_len = pre_seq_len
    return cfg


def sample_lengths(n: int, seq: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [max(16, min(seq, int(rng.lognormvariate(math.log(seq / 3), 0.6)))) for _ in range(n)]


def batches(lengths: list[int], batch: int, seq: int, pack: bool, vocab: int) -> list[dict[str, torch.Tensor]]:
    """Collated batches of random samples: padded (``pack=False``) or packed rows flattened (``pack=True``)."""
    from glmtune.data.collate import FlattenCollator, PadCollator
    from glmtune.data.pack import pack_groups

    rng = torch.Generator().manual_seed(1)
    samples = []
    for n in lengths:
        ids = torch.randint(10, vocab, (n,), generator=rng).tolist()
        samples.append({"input_ids": ids, "labels": [-100] * (n // 2) + ids[n // 2 :]})
    if not pack:
        collate = PadCollator(0)
        return [collate(samples[i : i + batch]) for i in range(0, len(samples) - batch + 1, batch)]
    rows = []
    for group in pack_groups(lengths, seq):
        row: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
        for i in group:
            row["input_ids"] += samples[i]["input_ids"]
            row["labels"] += samples[i]["labels"]
            row["position_ids"] += list(range(len(samples[i]["input_ids"])))
        rows.append(row)
    collate = FlattenCollator(0)
    return [collate(rows[i : i + batch]) for i in range(0, len(rows) - batch + 1, batch)]


def sample_sizes(b: dict[str, torch.Tensor]) -> list[int]:
    """Real lengths of the samples in a collated batch (from its position ids)."""
    if "attention_mask" in b:
        return b["attention_mask"].sum(1).tolist()
    starts = [*(b["position_ids"][0] == 0).nonzero().flatten().tolist(), b["position_ids"].shape[1]]
    return [starts[i + 1] - starts[i] for i in range(len(starts) - 1)]


def matmul_params(model: Any) -> int:
    """Parameters of all matmuls except the embedding (base weights; adapters are negligible)."""
    total = 0
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if weight is None or "embed" in name or "lora_" in name or "prefix" in name or weight.dim() != 2:
            continue
        shape = getattr(weight, "quant_state", None)
        total += math.prod(shape.shape) if shape is not None else weight.numel()
    return total


def run_case(model: Any, data: list[dict[str, torch.Tensor]], steps: int, device: str, amp: bool) -> dict[str, Any]:
    """Train ``steps`` batches after 2 warm-up steps; throughput, model FLOPs/s and peak memory."""
    cfg = model.config
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=device == "cuda")
    n_matmul = matmul_params(model)
    model.train()
    tokens = flops = 0.0
    start = time.perf_counter()
    for step in range(steps + 2):
        if step == 2:
            _sync(device)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            tokens = flops = 0.0
            start = time.perf_counter()
        b = {k: v.to(device) for k, v in data[step % len(data)].items()}
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sizes = sample_sizes(b)
        tokens += sum(sizes)
        flops += sum(6 * n_matmul * n + 12 * cfg.num_hidden_layers * cfg.hidden_size * n * n for n in sizes)
    _sync(device)
    elapsed = time.perf_counter() - start
    out = {
        "tokens_per_s": round(tokens / elapsed, 1),
        "model_tflops_per_s": round(flops / elapsed / 1e12, 3),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if device == "cuda" else None,
        "trainable_params": sum(p.numel() for p in params),
        "loss": round(float(loss), 3),
    }
    del opt
    return out


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def prepare(model: Any, family: str, method: Any, checkpointing: bool) -> Any:
    from glmtune.families import get_family
    from glmtune.train.methods import apply_method, upcast_trainable

    model = apply_method(model, get_family(family), method, checkpointing)
    if method.name != "qlora":
        upcast_trainable(model)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def measure(
    shape: dict[str, Any], case: dict[str, Any], data: list[Any], workdir: Path, device: str, amp: bool, steps: int
) -> dict[str, Any]:
    """Build the model of one case, apply its method and time it."""
    _free()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if case["method"] == "qlora":
        model = quantized_model(shape, workdir, device)
    else:
        model = build_model(shape, device, torch.bfloat16 if amp else torch.float32)
    model = prepare(model, shape["family"], method_config(shape["family"], case["method"]), case["ckpt"])
    try:
        return run_case(model, data, steps, device, amp)
    finally:
        del model


def cases(smoke: bool, seq: int, batch: int) -> list[dict[str, Any]]:
    """(method, pack, checkpointing, seq, batch) of every measured case."""
    out = [dict(method="lora", pack=p, ckpt=c, seq=seq, batch=batch) for p in (False, True) for c in (False, True)]
    out.append(dict(method="qlora", pack=False, ckpt=True, seq=seq, batch=1))
    # official ChatGLM3 finetune_demo P-Tuning v2: 128 virtual tokens, batch 4, max_input 256 + max_output 512
    ptuning_seq = 96 if smoke else 768
    out += [dict(method="ptuning-v2", pack=False, ckpt=c, seq=ptuning_seq, batch=4) for c in (False, True)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="chatglm3-6b,glm4-9b", help=f"any of {', '.join(SHAPES)}")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per case (after 2 warm-up steps)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the GPU (default: by name)")
    ap.add_argument("--workdir", default=None, help="where the QLoRA source checkpoints go (default: a temp dir)")
    ap.add_argument("--smoke", action="store_true", help="tiny shape on CPU, fp32, 2 steps (the test suite's run)")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()
    if args.smoke:
        args.shapes, args.seq, args.batch, args.steps = "tiny", 128, 2, 1
        device, amp = "cpu", False
    elif torch.cuda.is_available():
        device, amp = "cuda", True
    else:
        raise SystemExit("bench_train_gpu.py needs a CUDA GPU (or --smoke for the CPU check)")
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in gpu), None)
    report: dict[str, Any] = {"device": gpu, "torch": torch.__version__, "peak_tflops": peak, "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        for name in args.shapes.split(","):
            shape = SHAPES[name]
            for case in cases(args.smoke, args.seq, args.batch):
                lengths = sample_lengths((args.steps + 2) * case["batch"] * 4, case["seq"])
                data = batches(lengths, case["batch"], case["seq"], case["pack"], shape["padded_vocab_size"])
                row = {"shape": name, **{k: case[k] for k in ("method", "pack", "seq", "batch")}}
                row["gradient_checkpointing"] = case["ckpt"]
                try:
                    row.update(measure(shape, case, data, workdir, device, amp, args.steps))
                    row["mfu"] = round(row["model_tflops_per_s"] / peak, 4) if peak else None
                except torch.cuda.OutOfMemoryError:
                    row["error"] = "out of memory"
                report["results"].append(row)
                _free()
    print(json.dumps(report, ensure_ascii=False) if args.json else json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
