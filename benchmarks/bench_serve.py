"""Serving throughput: 16 concurrent streaming clients against ``glmtune serve`` on a tiny ChatGLM3.

Two runs of the same workload on the same engine: continuous batching (``--max-batch-size 32``) and the baseline
that serves requests one at a time (``--max-batch-size 1``). Each client sends ``--requests`` streamed chat
completions in a row; decoding is greedy by default (as in vLLM's serving benchmark; ``--temperature`` and
``--top-p`` sample with per-request seeds), so both runs generate exactly the same tokens. Reported: completion
tokens per second of each run, the speedup, and p50/p95 time to first token (first content delta).

Sampling a random-weight model is the sampler's worst case (flat distributions make the top-p nucleus most of
the vocabulary, a per-step cost that batching cannot share); a trained model's peaked distributions are cheap.

    python benchmarks/bench_serve.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: Path, batch: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "glmtune.cli",
                "serve",
                str(model),
                "--port",
                str(port),
                "--max-batch-size",
                str(batch),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start in 180 s")


async def one(
    client: httpx.AsyncClient, model: str, prompt: str, seed: int, args: argparse.Namespace
) -> tuple[float, int]:
    """(time to first content token, completion tokens) of one streamed request.

    A plain httpx SSE reader: the official client's per-chunk parsing would take a core of its own, which on a
    small machine is taken from the server being measured.
    """
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "seed": seed,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    ttft, tokens = None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if ttft is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                ttft = time.perf_counter() - t0
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return (ttft if ttft is not None else time.perf_counter() - t0), tokens


async def workload(url: str, model: str, args: argparse.Namespace) -> dict[str, float]:
    limits = httpx.Limits(max_connections=args.clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await one(client, model, "warm up", 0, args)

        async def user(i: int) -> list[tuple[float, int]]:
            return [
                await one(client, model, f"user {i} asks question {r}: tell me a story", 1000 * i + r, args)
                for r in range(args.requests)
            ]

        t0 = time.perf_counter()
        results = [x for per_user in await asyncio.gather(*(user(i) for i in range(args.clients))) for x in per_user]
        wall = time.perf_counter() - t0
    ttfts = sorted(t for t, _ in results)
    tokens = sum(n for _, n in results)
    return {
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "ttft_p50_s": statistics.median(ttfts),
        "ttft_p95_s": ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))],
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    from glmtune.model.tiny import make_tiny

    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny("chatglm3", Path(tmp) / "tiny-chatglm3")
        out: dict[str, dict[str, float]] = {}
        for name, batch in (("batched", args.max_batch_size), ("baseline", 1)):
            proc, url = start(model, batch, Path(tmp) / f"{name}.log")
            try:
                out[name] = asyncio.run(workload(url, model.name, args))
            finally:
                proc.terminate()
                proc.wait(30)
    b, s = out["batched"], out["baseline"]
    return {
        "model": "tiny chatglm3 (random weights)",
        "clients": args.clients,
        "requests_per_client": args.requests,
        "max_tokens": args.max_tokens,
        "max_batch_size": args.max_batch_size,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "completion_tokens": b["tokens"],
        "baseline_completion_tokens": s["tokens"],
        "tokens_per_s": round(b["tokens_per_s"], 1),
        "baseline_tokens_per_s": round(s["tokens_per_s"], 1),
        "speedup": round(b["tokens_per_s"] / s["tokens_per_s"], 2),
        "ttft_p50_s": round(b["ttft_p50_s"], 4),
        "ttft_p95_s": round(b["ttft_p95_s"], 4),
        "baseline_ttft_p50_s": round(s["ttft_p50_s"], 4),
        "baseline_ttft_p95_s": round(s["ttft_p95_s"], 4),
        "wall_s": round(b["wall_s"], 2),
        "baseline_wall_s": round(s["wall_s"], 2),
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=8, help="streamed requests per client, one after another")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:28} {v}")


if __name__ == "__main__":
    main()
