"""Loss curves and progress lines of runs, as the page shows them (a table for gradio's line plot)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from glmtune.board.runs import RUNNING, RunView
from glmtune.train.plot import loss_figure


def curve_figure(views: Iterable[RunView], with_name: bool = True, title: str = "loss") -> Any:
    """The runs' train and eval loss curves, overlaid (a matplotlib figure)."""
    runs = {(v.name if with_name else ""): (v.progress.train, v.progress.eval) for v in views}
    return loss_figure(runs, title=title)


def points(views: Iterable[RunView]) -> int:
    """How many points the runs' curves have (the page redraws a plot only when this changes)."""
    return sum(len(v.progress.train) + len(v.progress.eval) for v in views)


def duration(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03``; an em dash when unknown."""
    if seconds is None:
        return "—"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def progress_line(view: RunView) -> str:
    """One line: status, step, loss, lr, epoch, elapsed and ETA (markdown)."""
    p = view.progress
    total = f"/{p.max_steps}" if p.max_steps else ""
    parts = [
        f"**{view.name}**: {view.status}",
        f"step {p.step}{total}",
        f"loss {_num(p.loss, '.4f')}",
        f"lr {_num(p.learning_rate, '.2e')}",
        f"epoch {_num(p.epoch, '.2f')}",
        f"elapsed {duration(p.elapsed)}",
        f"ETA {duration(p.eta) if view.status == RUNNING else '—'}",
    ]
    line = " · ".join(parts)
    if view.message:
        line += f"\n\n`{view.message}`"
    return line


def percent(view: RunView) -> float:
    p = view.progress
    return 100.0 * p.step / p.max_steps if p.max_steps else 0.0


def summary_row(view: RunView) -> list[Any]:
    """The runs table's row: name, status, step, last loss, final train loss, eval loss, checkpoints, output."""
    p = view.progress
    return [
        view.name,
        view.status,
        f"{p.step}/{p.max_steps}" if p.max_steps else str(p.step),
        None if p.loss is None else round(p.loss, 4),
        None if "train_loss" not in p.metrics else round(p.metrics["train_loss"], 4),
        None if "eval_loss" not in p.metrics else round(p.metrics["eval_loss"], 4),
        len(view.checkpoints),
        str(view.output_dir),
    ]


SUMMARY_HEADERS = ["run", "status", "step", "loss", "train loss", "eval loss", "checkpoints", "output"]
