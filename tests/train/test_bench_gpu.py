"""The GPU training benchmark's CPU smoke mode runs every case end to end and prints one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_train_gpu_smoke() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_train_gpu.py"), "--smoke", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]  # DeepSpeed logs to stdout
    assert len(lines) == 1, done.stdout[-2000:]
    report = json.loads(lines[0])
    rows = report["results"]
    seen = {(r["method"], r["pack"], r["gradient_checkpointing"]) for r in rows}
    lora = {("lora", p, c) for p in (False, True) for c in (False, True)}
    assert lora | {("qlora", False, True), ("ptuning-v2", False, False), ("ptuning-v2", False, True)} == seen
    for r in rows:
        assert "error" not in r, r
        assert r["tokens_per_s"] > 0 and r["trainable_params"] > 0 and r["loss"] > 0, r
