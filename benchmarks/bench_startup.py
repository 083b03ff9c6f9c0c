"""Start-up as users see it: ``glmtune --help``, ``glmtune preprocess --help`` and ``glmtune chat`` on a tiny model
until its first ``user>`` prompt, each a fresh process, medians of ``--repeat``, alternating with the floors:
``python -c pass`` (the interpreter) and ``python -c "from transformers import GlmForCausalLM"`` (the modules
chat needs for the model: torch and transformers' GLM, generation and loading code), which chat cannot go below.

    python benchmarks/bench_startup.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def first_prompt(model: Path) -> float:
    """Seconds from starting ``glmtune chat MODEL`` to its first ``user>`` prompt (then it is told to exit)."""
    cmd = [sys.executable, "-m", "glmtune.cli", "chat", str(model)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stdin is not None
    seen = b""
    while b"user>" not in seen:
        byte = proc.stdout.read(1)
        if not byte:
            raise RuntimeError("chat exited before its first prompt")
        seen = seen[-16:] + byte
    elapsed = time.perf_counter() - start
    proc.communicate(b"exit\n", timeout=120)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    runs: dict[str, list[float]] = {
        "help": [],
        "preprocess_help": [],
        "chat_first_prompt": [],
        "python_floor": [],
        "import_floor": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny"
        subprocess.run([sys.executable, "-m", "glmtune.cli", "make-tiny", str(model)], env=ENV, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        for _ in range(args.repeat):
            runs["help"].append(timed([sys.executable, "-m", "glmtune.cli", "--help"]))
            runs["preprocess_help"].append(timed([sys.executable, "-m", "glmtune.cli", "preprocess", "--help"]))
            runs["chat_first_prompt"].append(first_prompt(model))
            runs["python_floor"].append(timed([sys.executable, "-c", "pass"]))
            runs["import_floor"].append(timed([sys.executable, "-c", "from transformers import GlmForCausalLM"]))
    figures = {f"{k}_s": round(statistics.median(v), 3) for k, v in runs.items()}
    figures["chat_over_floor_s"] = round(
        statistics.median(c - f for c, f in zip(runs["chat_first_prompt"], runs["import_floor"], strict=True)), 3
    )
    figures["runs_s"] = {k: [round(x, 3) for x in v] for k, v in runs.items()}
    figures["load_avg_1min"] = round(os.getloadavg()[0], 2)  # after the runs
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
