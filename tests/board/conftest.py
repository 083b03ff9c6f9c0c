"""A tiny ChatGLM3 and the form values of a short run on it, shared by the board tests."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from glmtune.board.form import defaults
from glmtune.board.runs import RunRecord, RunView
from glmtune.board.session import Board
from glmtune.train.resume import complete_checkpoints, step_of

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "examples" / "chatglm3_conversations.json"
DEV = REPO / "examples" / "chatglm3_conversations_dev.json"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from glmtune.model.tiny import make_tiny

    return make_tiny("chatglm3", tmp_path_factory.mktemp("board-model") / "tiny-chatglm3")


def run_values(model: Path, steps: int = 8, **changes: Any) -> dict[str, Any]:
    """Form values of a short LoRA run on the tiny model (a checkpoint every 4 steps)."""
    values = defaults()
    values.update(
        {
            "model.path": str(model),
            "data.train": str(DATA),
            "data.max_length": 128,
            "training.max_steps": steps,
            "training.logging_steps": 1,
            "training.save_steps": 4,
            "training.learning_rate": 0.01,
            "training.seed": 7,
        }
    )
    values.update(changes)
    return values


@pytest.fixture
def board(tmp_path: Path) -> Board:
    return Board(tmp_path / "board", cwd=REPO)


def wait_for(board: Board, name: str, done: Callable[[RunView], bool], timeout: float = 300) -> RunView:
    """Poll the run until ``done`` holds (fails, with the log, on timeout or when the run fails)."""
    end = time.monotonic() + timeout
    while True:
        view = board.runs.view(name)
        if done(view):
            return view
        if view.status == "failed" or time.monotonic() > end:
            raise AssertionError(f"{name}: {view.status} at step {view.progress.step}\n{board.runs.log_tail(name)}")
        time.sleep(0.2)


def hold_at_checkpoint(run_dir: Path, max_steps: int, timeout: float = 300) -> Path:
    """Suspend the run's process group (SIGSTOP) once a complete checkpoint before ``max_steps`` is on disk, so a
    test stops a run that has something to resume from and cannot have finished; returns that checkpoint.

    Any ``checkpoint-N`` counts: ``save_total_limit`` may rotate the early ones away before a poll sees them.
    Stopping the run (SIGTERM, then SIGCONT) ends the suspended process."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        record = RunRecord.read(run_dir) if (run_dir / "board.json").is_file() else None
        if record is not None and record.pid:
            found = [c for c in complete_checkpoints(Path(record.output_dir)) if (step_of(c) or 0) < max_steps]
            if found:
                os.killpg(record.pid, signal.SIGSTOP)
                return found[-1]
            if record.returncode is not None:
                raise AssertionError(f"{run_dir.name} ended before a checkpoint was seen")
        time.sleep(0.05)
    raise AssertionError(f"{run_dir.name}: no complete checkpoint within {timeout:.0f} s")


def release(run_dir: Path) -> None:
    """Let a run suspended by :func:`hold_at_checkpoint` go on (SIGCONT)."""
    os.killpg(RunRecord.read(run_dir).pid, signal.SIGCONT)
