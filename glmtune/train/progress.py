"""``train_log.jsonl``: a live record of a training run (step, loss, lr, ETA), written as it goes.

The ``glmtune train`` process appends one JSON object per line to ``output_dir/train_log.jsonl``:

* ``begin``: training starts (or resumes) at ``step`` of ``max_steps``;
* ``step``: the current step, at most every ``every_s`` seconds (and at the last step);
* ``log``: whatever the Trainer logs (``loss``, ``learning_rate``, ``eval_loss``, ``train_runtime`` ...);
* ``end``: training finished.

Every event carries ``step``, ``max_steps``, ``epoch``, ``time``, ``elapsed`` (seconds since ``begin``) and
``eta`` (seconds left at the speed since ``begin``). A run that starts at step 0 truncates the file; a resumed
run appends, and :func:`read_progress` drops what the first run logged after the step the resumed one began at.
``glmtune board`` reads it; ``tail -f`` works too.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

LOG_FILE = "train_log.jsonl"


class ProgressLog(TrainerCallback):
    """Writes :data:`LOG_FILE` events from the main process."""

    def __init__(self, output_dir: str | Path, every_s: float = 1.0) -> None:
        self.path = Path(output_dir) / LOG_FILE
        self.every_s = every_s
        self.start = time.time()
        self.begin_step = 0
        self.last_write = 0.0

    def _event(self, kind: str, state: Any, **extra: Any) -> dict[str, Any]:
        now = time.time()
        done = state.global_step - self.begin_step
        left = max(state.max_steps - state.global_step, 0)
        eta = (now - self.start) / done * left if done > 0 else None
        return {
            "event": kind,
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": state.epoch,
            "time": now,
            "elapsed": now - self.start,
            "eta": eta,
            **extra,
        }

    def _write(self, event: dict[str, Any], mode: str = "a") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, mode, encoding="utf-8") as f:
            f.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.last_write = event["time"]

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.start = time.time()
        self.begin_step = state.global_step
        self._write(self._event("begin", state), mode="w" if state.global_step == 0 else "a")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if time.time() - self.last_write >= self.every_s or state.global_step >= state.max_steps:
            self._write(self._event("step", state))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        numbers = {k: v for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._write(self._event("log", state, **numbers))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._write(self._event("end", state))


@dataclass
class Progress:
    """What :data:`LOG_FILE` says about a run so far."""

    step: int = 0
    max_steps: int = 0
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    elapsed: float | None = None
    eta: float | None = None
    updated: float | None = None  # time of the last event
    began_at: float | None = None  # time of the last ``begin``
    begun: bool = False
    ended: bool = False
    train: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    eval: list[tuple[int, float]] = field(default_factory=list)  # (step, eval_loss)
    metrics: dict[str, float] = field(default_factory=dict)  # the last eval_* and train_* figures


def read_progress(path: str | Path) -> Progress:
    """The :class:`Progress` in a log file (a missing file, or a half-written last line, is not an error)."""
    out = Progress()
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            _apply(out, event)
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _apply(out: Progress, event: dict[str, Any]) -> None:
    kind = event.get("event")
    step = int(event.get("step") or 0)
    if kind == "begin":  # a resumed run replaces what the interrupted one logged after its checkpoint
        out.train = [p for p in out.train if p[0] <= step]
        out.eval = [p for p in out.eval if p[0] <= step]
        out.begun, out.ended, out.began_at = True, False, _number(event.get("time"))
    out.step = step
    out.max_steps = int(event.get("max_steps") or out.max_steps)
    out.epoch = _number(event.get("epoch"))
    out.elapsed = _number(event.get("elapsed"))
    out.eta = _number(event.get("eta"))
    out.updated = _number(event.get("time"))
    if kind == "end":
        out.ended, out.eta = True, 0.0
    if kind != "log":
        return
    loss, eval_loss = _number(event.get("loss")), _number(event.get("eval_loss"))
    if loss is not None:
        out.loss = loss
        out.train.append((step, loss))
    if eval_loss is not None:
        out.eval.append((step, eval_loss))
    if _number(event.get("learning_rate")) is not None:
        out.learning_rate = _number(event.get("learning_rate"))
    for key, value in event.items():
        if key.startswith(("eval_", "train_")) and _number(value) is not None:
            out.metrics[key] = float(value)
