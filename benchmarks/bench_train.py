"""Training throughput on the tiny ChatGLM3: packed rows vs official-style padding to the maximum length.

Same records, same LoRA model, same optimizer; one pass each:
- baseline (official MultiTurnDataset): every sample padded to ``--max-length`` (2048), one row per step;
- glmtune: samples packed into rows of ``--max-length`` (best-fit), per-sample position ids (no attention across
  samples), one row per step.
``useful_tokens_per_s`` counts real (non-pad) tokens only.

    python benchmarks/bench_train.py --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def samples(tokenizer, family, copies: int) -> list[dict[str, list[int]]]:
    from glmtune.data import load_records, render_records

    records = load_records([REPO / "examples" / "chatglm3_conversations.json"])
    rows = render_records(records, tokenizer, family, max_length=2048)
    return [dict(r) for r in rows] * copies


def run(model, batches, optimizer) -> float:
    """Seconds for one optimizer step per batch."""
    model.train()
    start = time.perf_counter()
    for batch in batches:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--copies", type=int, default=3, help="how many times the example records are repeated")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    import glmtune
    from glmtune.config.schema import MethodConfig
    from glmtune.data.collate import FlattenCollator, PadCollator
    from glmtune.data.pack import pack_groups
    from glmtune.model.tiny import make_tiny
    from glmtune.train.methods import apply_method

    torch.manual_seed(0)
    ckpt = make_tiny("chatglm3", Path(tempfile.mkdtemp()) / "tiny")
    loaded = glmtune.load(ckpt, dtype="fp32")
    model = apply_method(loaded.model, loaded.family, MethodConfig(name="lora", lora_r=8), False)
    data = samples(loaded.tokenizer, loaded.family, args.copies)
    lengths = [len(s["input_ids"]) for s in data]
    useful_tokens = sum(lengths)
    pad = loaded.tokenizer.pad_token_id

    padded = PadCollator(pad, pad_to_multiple_of=args.max_length)
    baseline_batches = [padded([s]) for s in data]
    flat = FlattenCollator(pad, pad_to_multiple_of=args.max_length)
    packed_batches = [flat([data[i] for i in group]) for group in pack_groups(lengths, args.max_length)]

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    run(model, baseline_batches[:2], opt)  # warm-up
    base_s = run(model, baseline_batches, opt)
    packed_s = run(model, packed_batches, opt)
    result = {
        "samples": len(data),
        "useful_tokens": useful_tokens,
        "max_length": args.max_length,
        "baseline_rows": len(baseline_batches),
        "packed_rows": len(packed_batches),
        "useful_token_ratio_padded": round(useful_tokens / (len(baseline_batches) * args.max_length), 4),
        "useful_token_ratio_packed": round(useful_tokens / (len(packed_batches) * args.max_length), 4),
        "baseline_useful_tokens_per_s": round(useful_tokens / base_s, 1),
        "useful_tokens_per_s": round(useful_tokens / packed_s, 1),
        "speedup": round(base_s / packed_s, 2),
        "target_speedup": 2.0,
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
