"""Training runs as a new user types them: the shipped configs with overrides, on tiny checkpoints, through the CLI.

P-Tuning v2 reports an eval loss, truncation is said, Ctrl-C says where the run stands and the next run says where
it resumes from, and ``--training.eval_strategy no`` means the string ``no``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def glmtune(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "glmtune.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def adgen(path: Path, n: int, long: bool = False) -> Path:
    """ADGEN-style records (content/summary); ``long`` makes every summary longer than a short max_length."""
    rows = [
        {"content": f"类型#裤*颜色#白色*款式#{i}", "summary": "白色简约阔腿裤，垂坠感好。" * (6 if long else 1)}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.slow
def test_chatglm2_ptuning_reports_eval_loss_and_truncation(tiny_factory, tmp_path: Path) -> None:
    ckpt = tiny_factory("chatglm2")
    train, dev = adgen(tmp_path / "train.json", 8, long=True), adgen(tmp_path / "dev.json", 2)
    out = tmp_path / "run"
    proc = glmtune(
        "train", "configs/chatglm2/ptuning-v2.yaml", "--model.path", str(ckpt), "--data.train", str(train),
        "--data.eval", str(dev), "--data.max_length", "24", "--method.pre_seq_len", "4",
        "--training.output_dir", str(out), "--training.max_steps", "2", "--training.eval_steps", "2",
        "--training.save_steps", "2", "--training.logging_steps", "1", "--training.per_device_train_batch_size", "2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert any("eval_loss" in e for e in state["log_history"]), state["log_history"]
    assert "eval loss:" in proc.stdout
    assert "train: 8 samples from 8 records, 8 truncated to 24 tokens" in proc.stderr


@pytest.mark.slow
def test_ctrl_c_says_where_and_the_next_run_says_where_it_resumes(tiny_factory, tmp_path: Path) -> None:
    ckpt = tiny_factory("chatglm3")
    out = tmp_path / "run"
    args = [
        "train", "configs/chatglm3/lora.yaml", "--model.path", str(ckpt), "--training.output_dir", str(out),
        "--training.eval_strategy", "no", "--training.save_steps", "1", "--training.max_steps", "400",
        "--data.max_length", "64",
    ]  # fmt: skip
    log = tmp_path / "stderr.log"
    with log.open("w") as sink:  # a file, not a pipe: nobody reads while it trains
        proc = subprocess.Popen(
            [sys.executable, "-m", "glmtune.cli", *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=sink, text=True
        )
        deadline = time.time() + 300

        def saved() -> bool:  # save_total_limit rotates checkpoints: any complete one from step 2 on
            return any(int(p.parent.name.split("-")[1]) >= 2 for p in out.glob("checkpoint-*/trainer_state.json"))

        while not saved():
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends
        proc.wait(timeout=120)
    err = log.read_text()
    assert proc.returncode == 130, err[-3000:]
    last = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert "interrupted at step" in err and f"last complete checkpoint: {out / f'checkpoint-{last}'}" in err
    again = glmtune(*args[:-4], "--training.max_steps", str(last + 1), "--data.max_length", "64")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from {out / f'checkpoint-{last}'} (step {last})" in again.stderr
