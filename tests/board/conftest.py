"""A tiny ChatGLM3 and the form values of a short run on it, shared by the board tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from glmtune.board.form import defaults
from glmtune.board.runs import RunView
from glmtune.board.session import Board

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
