"""``--show K``: the first samples as readable text, loss-bearing tokens highlighted (rich colours).

Like the official ``sanity_check`` but one line per message instead of one line per token: text the model
learns is green on a dark background, prompt text is dim, special tokens are cyan ``<|user|>`` tags. Without
colours (output piped to a file, ``NO_COLOR``) the learned text is also marked in plain text: ``⟦like this⟧``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

IGNORE = -100
OPEN, CLOSE = "⟦", "⟧"  # plain-text marks around learned text when there are no colours


def _runs(ids: Sequence[int], labels: Sequence[int] | None, specials: dict[int, str]) -> list[tuple[str, list[int]]]:
    """Consecutive tokens of the same kind: ("special" | "loss" | "prompt", ids)."""
    out: list[tuple[str, list[int]]] = []
    for k, t in enumerate(ids):
        kind = "special" if t in specials else ("loss" if labels is not None and labels[k] != IGNORE else "prompt")
        if kind == "special" and labels is not None and labels[k] != IGNORE:
            kind = "special-loss"
        if out and out[-1][0] == kind and not kind.startswith("special"):
            out[-1][1].append(t)
        else:
            out.append((kind, [t]))
    return out


def render_sample(sample: dict[str, Any], tokenizer: Any, marks: bool = False) -> Text:
    """One sample as styled text (a target that is not aligned with the input, as in the ptuning eval, and the
    finetune-demo ``output_ids`` are shown after an arrow); ``marks``: learned text also between ``⟦ ⟧``."""
    specials = dict(getattr(tokenizer, "index_special_tokens", {}))
    pad = tokenizer.pad_token_id
    ids = list(sample["input_ids"])
    labels = sample.get("labels")
    target = sample.get("output_ids")
    if labels is not None and len(labels) != len(ids):
        target, labels = labels, None
    start, stop = 0, len(ids)
    while stop > start and ids[stop - 1] == pad and (labels is None or labels[stop - 1] == IGNORE):
        stop -= 1
    while start < stop and ids[start] == pad and (labels is None or labels[start] == IGNORE):
        start += 1
    ids, labels = ids[start:stop], (labels[start:stop] if labels is not None else None)
    styles = {
        "loss": "bold green on grey15",
        "prompt": "grey62",
        "special": "cyan",
        "special-loss": "bold cyan on grey15",
    }
    text = Text()
    for kind, run in _runs(ids, labels, specials):
        piece = specials[run[0]] if kind.startswith("special") else tokenizer.decode(run)
        if marks and kind in ("loss", "special-loss"):
            piece = f"{OPEN}{piece}{CLOSE}"
        text.append(piece, style=styles[kind])
    if target is not None:
        text.append("\n  ⟶ ", style="bold")
        reply = tokenizer.decode([t for t in target if t not in (pad, IGNORE)])
        text.append(f"{OPEN}{reply}{CLOSE}" if marks else reply, style=styles["loss"])
    return text


def show_samples(samples: Sequence[dict[str, Any]], tokenizer: Any, k: int, console: Console | None = None) -> None:
    """Print the first ``k`` samples with a legend."""
    console = console or Console(stderr=False, highlight=False)
    marks = console.color_system is None  # piped or NO_COLOR: the colours do not reach the reader
    console.print(
        Text.assemble(
            ("legend: ", "bold"),
            (f"{OPEN}trained on{CLOSE}" if marks else "trained on", "bold green on grey15"),
            "  ",
            ("prompt (no loss)", "grey62"),
            "  ",
            ("<|special|>", "cyan"),
        )
    )
    for i, sample in enumerate(samples[:k]):
        n_loss = sum(1 for x in sample.get("labels", []) if x != IGNORE)
        console.rule(f"sample {i + 1}: {len(sample['input_ids'])} tokens, {n_loss} with loss")
        console.print(render_sample(sample, tokenizer, marks=marks))
