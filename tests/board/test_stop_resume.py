"""Stop a run (the process has exited when stop returns), resume it from its last complete checkpoint, from a
board other than the one that started it (as after a restart of the board)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from glmtune.board.session import Board
from glmtune.errors import GlmtuneError
from glmtune.train.resume import step_of
from tests.board.conftest import REPO, hold_at_checkpoint, run_values, wait_for

pytestmark = pytest.mark.slow


def test_stop_then_resume_from_another_board(board: Board, tiny: Path) -> None:
    checked, _ = board.launch(run_values(tiny, steps=16), "long")
    assert checked.ok, checked.errors
    first_pid = board.runs.record("long").pid
    with pytest.raises(GlmtuneError, match="still running"):
        board.resume("long")

    held = hold_at_checkpoint(board.runs.run_dir("long"), 16)  # suspended: it cannot finish before the stop
    other = Board(board.runs.workdir, cwd=REPO)  # a board started later finds the run and its process
    assert other.runs.view("long").status == "running"
    assert other.stop("long") == "stopped long"
    assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
    for b in (board, other):
        view = b.runs.view("long")
        assert view.status == "stopped" and not view.progress.ended and view.progress.step < 16
    assert other.stop("long") == "long is not running"
    last = view.checkpoints[-1].name
    assert step_of(view.checkpoints[-1]) >= step_of(held)  # nothing ran after the hold, nothing was lost

    assert other.resume("long") == f"resumed long from {last}"
    view = wait_for(other, "long", lambda v: v.status == "finished")
    assert [s for s, _ in view.progress.train] == list(range(1, 17))  # each step once: the resumed run's
    assert view.progress.ended and other.runs.record("long").launches == 2
    assert "---- resumed at" in other.runs.log_tail("long", 400)
    assert board.runs.view("long").status == "finished"  # the first board agrees
