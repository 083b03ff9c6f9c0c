"""Runs started from the board are real ``glmtune train`` processes: launch, live progress, curve, the end."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from glmtune.board.session import Board
from tests.board.conftest import run_values, wait_for

pytestmark = pytest.mark.slow


def test_launch_watch_finish(board: Board, tiny: Path) -> None:
    values = run_values(tiny, steps=8)
    checked, message = board.launch(values, "first")
    assert checked.ok and message == "started first", checked.errors
    rec = board.runs.record("first")
    assert os.getpgid(rec.pid) == rec.pid  # its own session: closing the page or the board does not end it

    config = yaml.safe_load((board.runs.run_dir("first") / "config.yaml").read_text())
    assert config == yaml.safe_load(board.yaml_text(values, "first"))  # the YAML shown is the YAML run
    seen_steps = set()

    def progressed(view) -> bool:
        if view.progress.train:
            seen_steps.add(len(view.progress.train))
        return view.status == "finished"

    view = wait_for(board, "first", progressed)
    assert len(seen_steps) > 1 or max(seen_steps) == 8  # the curve was read while it grew (or all at once)

    state = json.loads((Path(rec.output_dir) / "trainer_state.json").read_text())
    logged = [(e["step"], e["loss"]) for e in state["log_history"] if "loss" in e]
    assert view.progress.train == logged and len(logged) == 8
    assert view.progress.step == view.progress.max_steps == 8 and view.progress.ended
    assert view.progress.metrics["train_loss"] == pytest.approx(state["log_history"][-1]["train_loss"])
    assert [p.name for p in view.checkpoints] == ["checkpoint-4", "checkpoint-8"]

    panel = board.panel("first", ["first"])
    assert "finished" in panel.status and "step 8/8" in panel.status and panel.percent == 100
    (line,) = panel.curve().axes[0].lines
    assert line.get_label() == "train loss" and list(line.get_xdata()) == list(range(1, 9))
    assert [ln.get_label() for ln in panel.compare().axes[0].lines] == ["first train loss"]
    assert panel.curve_points == panel.compare_points == 8
    assert panel.table[0][:3] == ["first", "finished", "8/8"]
    assert "trained lora" in panel.log

    again, message = board.launch(values, "first")  # a name is one run
    assert "run.name" in again.errors and "taken" in again.errors["run.name"]
    assert board.next_name("first") == "first-2"
    shared, _ = board.launch(run_values(tiny, **{"training.output_dir": rec.output_dir}), "second")
    assert "is run 'first'" in shared.errors["training.output_dir"]  # one output directory, one run


def test_a_failing_run_says_why(board: Board, tiny: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"conversations": [{"role": "user", "content": "hi"}]}]', encoding="utf-8")
    checked, message = board.launch(run_values(tiny, **{"data.train": str(bad)}), "bad")  # caught before it runs
    assert "bad.json:1" in checked.errors["data.train"] and "assistant" in checked.errors["data.train"], checked.errors
    assert message.startswith("not started") and not board.runs.names()

    hollow = tmp_path / "hollow"  # a config.json but no weights: found out only when the run loads it
    hollow.mkdir()
    shutil.copy(tiny / "config.json", hollow / "config.json")
    checked, _ = board.launch(run_values(hollow), "hollow")
    assert checked.ok, checked.errors
    view = wait_for(board, "hollow", lambda v: v.status == "failed", timeout=240)
    assert view.message.startswith("error:") and "hollow" in view.message, view.message
