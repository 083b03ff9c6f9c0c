"""Loss curves: the PNG written next to ``trainer_state.json`` after training, and the board's live plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Series = list[tuple[int, float]]


def loss_series(log_history: list[dict[str, Any]]) -> tuple[Series, Series]:
    """(train, eval) lists of (step, loss) from a trainer state's ``log_history``."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    return train, evals


def loss_figure(runs: dict[str, tuple[Series, Series]], title: str = "glmtune training loss") -> Any:
    """A matplotlib ``Figure`` of each run's (train, eval) loss against steps, one colour per run; a run named
    "" is labelled plainly. Built without pyplot, so nothing has to close it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    for i, (name, (train, evals)) in enumerate(runs.items()):
        prefix = f"{name} " if name else ""
        if train:
            ax.plot([s for s, _ in train], [v for _, v in train], label=f"{prefix}train loss", color=f"C{i}")
        if evals:
            eval_color = f"C{i}" if name else "C3"
            ax.plot([s for s, _ in evals], [v for _, v in evals], "o--", label=f"{prefix}eval loss", color=eval_color)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no loss logged yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.tight_layout()
    return fig


def plot_loss(state_file: Path, out_file: Path) -> Path | None:
    """Draw train (and eval) loss against steps; returns the PNG path, or None when nothing was logged."""
    history = json.loads(Path(state_file).read_text(encoding="utf-8")).get("log_history", [])
    train, evals = loss_series(history)
    if not train and not evals:
        return None
    loss_figure({"": (train, evals)}).savefig(out_file)
    return out_file
