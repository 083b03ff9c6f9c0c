"""Load time and peak RSS of ``glmtune.load`` on a >= 1B-parameter original-layout ChatGLM3 checkpoint.

The checkpoint (random fp16 weights, sharded safetensors + index, written tensor by tensor) is generated here
under ``--workdir`` and reused on later runs. The load runs in a fresh subprocess; its peak RSS (``ru_maxrss``) is
compared with the parameter bytes (target <= 1.3x); peak RSS is VmHWM (ru_maxrss survives exec).

    python benchmarks/bench_load.py --json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

CONFIG = {
    "hidden_size": 2048,
    "num_layers": 16,
    "num_attention_heads": 16,
    "kv_channels": 128,
    "multi_query_group_num": 2,
    "ffn_hidden_size": 8192,
    "padded_vocab_size": 65024,
    "seq_length": 8192,
}


def build(directory: Path) -> int:
    """Write the checkpoint shard by shard (bounded memory); returns the number of parameters."""
    from glmtune.model.glm_weights import ROTARY_BUFFER, expected_original_shapes, rotary_inv_freq
    from glmtune.model.tiny import AUTO_MAP

    cfg = {
        "_name_or_path": "bench-chatglm3-1b",
        "model_type": "chatglm",
        "architectures": ["ChatGLMModel"],
        "auto_map": AUTO_MAP,
        "add_bias_linear": False,
        "add_qkv_bias": True,
        "layernorm_epsilon": 1e-5,
        "multi_query_attention": True,
        "original_rope": True,
        "post_layer_norm": True,
        "rmsnorm": True,
        "torch_dtype": "float16",
        "eos_token_id": 2,
        "pad_token_id": 0,
        "tie_word_embeddings": False,
        **CONFIG,
    }
    shapes = expected_original_shapes(cfg)
    directory.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    names = sorted(shapes)
    shards: list[list[str]] = [[]]
    size = 0
    for n in names:
        nbytes = 2 * int(torch.tensor(shapes[n]).prod())
        if shards[-1] and size + nbytes > 400 * 1024**2:
            shards.append([])
            size = 0
        shards[-1].append(n)
        size += nbytes
    weight_map = {}
    for i, group in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        tensors = {n: (torch.randn(shapes[n], generator=gen) * 0.02).half() for n in group}
        if i == len(shards):
            tensors[ROTARY_BUFFER] = rotary_inv_freq(cfg, torch.float16)
            group = [*group, ROTARY_BUFFER]
        save_file(tensors, str(directory / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(group, fname))
        del tensors
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (directory / "config.json").write_text(json.dumps(cfg, indent=2))
    from glmtune.model.tiny import asset_path

    (directory / "tokenizer.model").write_bytes(asset_path("chatglm_sp.model").read_bytes())
    (directory / "done").write_text("ok")
    return sum(int(torch.tensor(s).prod()) for s in shapes.values())


PEAK = "int([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]) * 1024"
CHILD = """
import sys, time, json
t = time.time()
import torch
import glmtune
m = glmtune.load(sys.argv[1], dtype="auto")
load_s = time.time() - t
with torch.no_grad():  # touch every weight (lazily mapped pages must count too) without temporary copies
    for p in m.model.parameters():
        for chunk in p.view(-1).split(1 << 22):
            chunk.max()
n = sum(p.numel() for p in m.model.parameters())
b = sum(p.numel() * p.element_size() for p in m.model.parameters())
print(json.dumps({"load_s": load_s, "params": n, "param_bytes": b,
                  "peak_rss_bytes": PEAK}))
""".replace("PEAK", PEAK)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="runs/bench-load")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    ckpt = Path(args.workdir) / "chatglm3-1b"
    t = time.time()
    if not (ckpt / "done").is_file():
        build(ckpt)
    build_s = time.time() - t
    base = subprocess.run(
        [sys.executable, "-c", "import glmtune, torch, transformers; print(" + PEAK + ")"],
        capture_output=True,
        text=True,
        check=True,
    )
    out = subprocess.run([sys.executable, "-c", CHILD, str(ckpt)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(
        build_s=round(build_s, 1),
        baseline_rss_bytes=int(base.stdout.strip()),
        rss_over_param_bytes=round(result["peak_rss_bytes"] / result["param_bytes"], 3),
        target_rss_over_param_bytes=1.3,
    )
    result["load_s"] = round(result["load_s"], 2)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
