"""GPU training benchmark: a random-weight ChatGLM3-6B-shape model, bf16, per method: tokens/s, MFU, peak memory.

Needs a CUDA machine (H100/H200 class); the CPU suite never runs it. The model is random (no download): it is
built once on the GPU and saved as a native checkpoint under ``--workdir`` so QLoRA can quantise it on load.

    python benchmarks/bench_train_gpu.py --json [--methods lora,qlora,ptuning-v2,freeze,full] [--seq 1024]

MFU uses the PaLM convention: model FLOPs per token = 6 * N (non-embedding parameters) + 12 * layers * hidden * seq,
whatever the method (so LoRA/P-Tuning figures are comparable with full fine-tuning), divided by the GPU's dense
bf16 peak (``--peak-tflops``, default 989 for H100/H200 SXM). Targets on an H100: LoRA >= 45 % MFU, QLoRA peak
<= 5.0 GB, P-Tuning v2 peak below the official 18.4 GB.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

SHAPE = dict(
    vocab_size=65024,
    hidden_size=4096,
    intermediate_size=13696,
    num_hidden_layers=28,
    num_attention_heads=32,
    num_key_value_heads=2,
    head_dim=128,
    rms_norm_eps=1e-5,
    max_position_embeddings=8192,
    attention_bias=True,
    pad_token_id=0,
    eos_token_id=2,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
    glmtune_family="chatglm3",
)


def build_checkpoint(path: Path) -> None:
    from transformers import GlmConfig, GlmForCausalLM

    if (path / "config.json").is_file():
        return
    with torch.device("cuda"):
        model = GlmForCausalLM(GlmConfig(**SHAPE)).to(torch.bfloat16)
    model.save_pretrained(str(path))
    del model
    torch.cuda.empty_cache()


def load(path: Path, method: str):
    from transformers import BitsAndBytesConfig, GlmForCausalLM

    from glmtune.config.schema import MethodConfig
    from glmtune.families import get_family
    from glmtune.train.methods import apply_method

    quant = None
    if method == "qlora":
        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    model = GlmForCausalLM.from_pretrained(
        str(path), dtype=torch.bfloat16, device_map="cuda", attn_implementation="sdpa", quantization_config=quant
    )
    model.config.use_cache = False
    cfg = MethodConfig(
        name=method,
        lora_r=64 if method == "qlora" else 8,
        pre_seq_len=128,
        lora_targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"]
        if method == "qlora"
        else None,
    )
    model = apply_method(model, get_family("chatglm3"), cfg, gradient_checkpointing=True)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    return model


def bench(path: Path, method: str, seq: int, batch: int, steps: int, peak_tflops: float) -> dict:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = load(path, method)
    params = [p for p in model.parameters() if p.requires_grad]
    if method == "qlora":
        import bitsandbytes as bnb

        opt = bnb.optim.PagedAdamW8bit(params, lr=1e-4)
    else:
        opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
    ids = torch.randint(10, 60000, (batch, seq), device="cuda")
    for step in range(steps + 2):
        if step == 2:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    tokens = steps * batch * seq
    n = SHAPE["num_hidden_layers"] * (
        SHAPE["hidden_size"] * (SHAPE["num_attention_heads"] + 2 * SHAPE["num_key_value_heads"]) * SHAPE["head_dim"]
        + SHAPE["num_attention_heads"] * SHAPE["head_dim"] * SHAPE["hidden_size"]
        + 3 * SHAPE["hidden_size"] * SHAPE["intermediate_size"]
    )
    flops_per_token = 6 * n + 12 * SHAPE["num_hidden_layers"] * SHAPE["hidden_size"] * seq
    tps = tokens / elapsed
    result = {
        "method": method,
        "tokens_per_s": round(tps, 1),
        "mfu": round(tps * flops_per_token / (peak_tflops * 1e12), 4),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2),
        "trainable_params": sum(p.numel() for p in params),
    }
    del model, opt
    torch.cuda.empty_cache()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="lora,qlora,ptuning-v2,freeze,full")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--workdir", default="runs/bench-gpu")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_train_gpu.py needs a CUDA GPU")
    path = Path(args.workdir) / "chatglm3-6b-random"
    build_checkpoint(path)
    results = {"gpu": torch.cuda.get_device_name(), "seq": args.seq, "batch": args.batch, "methods": []}
    for method in args.methods.split(","):
        batch = 1 if method == "full" else args.batch
        results["methods"].append(bench(path, method, args.seq, batch, args.steps, args.peak_tflops))
    print(json.dumps(results) if args.json else json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
