"""train_log.jsonl: what the training process writes and what the board reads back (resume, torn last line)."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerControl, TrainerState

from glmtune.train.progress import LOG_FILE, ProgressLog, read_progress


def _state(step: int, max_steps: int = 10) -> TrainerState:
    state = TrainerState(max_steps=max_steps)
    state.global_step, state.epoch = step, step / 5
    return state


def _run(out: Path, start: int, stop: int) -> None:
    log, control = ProgressLog(out, every_s=0), TrainerControl()
    log.on_train_begin(None, _state(start), control)
    for step in range(start + 1, stop + 1):
        log.on_step_end(None, _state(step), control)
        log.on_log(None, _state(step), control, logs={"loss": 10.0 - step, "learning_rate": 0.1, "note": "x"})
    if stop == 10:
        log.on_log(None, _state(10), control, logs={"eval_loss": 1.5, "train_loss": 4.5})
        log.on_train_end(None, _state(10), control)


def test_progress_of_a_resumed_run(tmp_path: Path) -> None:
    assert read_progress(tmp_path / LOG_FILE).step == 0  # no file yet: nothing to show
    _run(tmp_path, 0, 6)  # killed after step 6 ...
    first = read_progress(tmp_path / LOG_FILE)
    assert first.step == 6 and first.max_steps == 10 and not first.ended and first.loss == 4.0
    assert first.eta is not None and first.eta >= 0 and first.learning_rate == 0.1
    _run(tmp_path, 4, 10)  # ... resumed from checkpoint-4
    done = read_progress(tmp_path / LOG_FILE)
    assert done.train == [(s, 10.0 - s) for s in range(1, 11)]  # steps 5 and 6 once, from the resumed run
    assert done.eval == [(10, 1.5)] and done.metrics == {"eval_loss": 1.5, "train_loss": 4.5}
    assert done.ended and done.eta == 0 and done.step == 10
    with open(tmp_path / LOG_FILE, "a", encoding="utf-8") as f:
        f.write('{"event": "log", "step": 11, "lo')  # a line being written while it is read
    assert read_progress(tmp_path / LOG_FILE).train == done.train
    _run(tmp_path, 0, 2)  # a new run from step 0 starts the file again
    assert read_progress(tmp_path / LOG_FILE).train == [(1, 9.0), (2, 8.0)]


def test_only_the_main_process_writes(tmp_path: Path) -> None:
    state = _state(0)
    state.is_world_process_zero = False
    ProgressLog(tmp_path).on_train_begin(None, state, TrainerControl())
    assert not (tmp_path / LOG_FILE).exists()
