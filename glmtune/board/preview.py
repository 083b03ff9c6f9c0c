"""The preview tab: the first samples as training will see them, and the ``preprocess --stats`` figures.

Samples are rendered by the training code itself (:func:`glmtune.train.datasets.build_datasets`), shown as
``preprocess --show`` prints them (:func:`glmtune.data.show.render_sample`, exported to HTML), with each
sample's tokens and loss mask underneath.
"""

from __future__ import annotations

import dataclasses
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtune.data.show import IGNORE, render_sample

MAX_TOKENS_SHOWN = 512
LEGEND = (
    '<p class="glm-legend"><b>legend:</b> <span class="tok loss">trained on</span> '
    '<span class="tok">prompt (no loss)</span> <span class="tok special">special token</span></p>'
)
STYLE = """<style>
.glm-preview pre { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 13px;
  background: #1e1e1e; color: #ddd; padding: 8px; border-radius: 6px; }
.glm-preview .tok { display: inline-block; font-family: ui-monospace, monospace; font-size: 12px; margin: 1px;
  padding: 0 3px; border-radius: 3px; background: #e5e7eb; color: #374151; white-space: pre; }
.glm-preview .tok.loss { background: #bbf7d0; color: #14532d; font-weight: 600; }
.glm-preview .tok.special { background: #cffafe; color: #155e75; }
.glm-preview .tok.special.loss { background: #a5f3fc; color: #164e63; font-weight: 600; }
</style>"""


@dataclass
class Preview:
    samples_html: str
    stats: dict[str, Any]
    count: int  # samples the training data renders to
    notes: list[str]  # what rendering had to say (skipped records, notes)


def sample_html(sample: dict[str, Any], tokenizer: Any) -> str:
    """One sample as ``--show`` prints it (HTML), plus its tokens coloured by the loss mask."""
    from rich.console import Console

    console = Console(record=True, file=io.StringIO(), width=120, color_system="truecolor", highlight=False)
    console.print(render_sample(sample, tokenizer))
    shown = console.export_html(inline_styles=True, code_format="<pre>{code}</pre>")
    return shown + tokens_html(sample, tokenizer)


def tokens_html(sample: dict[str, Any], tokenizer: Any) -> str:
    """The sample's tokens as chips (hover: id and label); trained-on tokens are green."""
    ids = list(sample["input_ids"])
    labels = sample.get("labels")
    if labels is None or len(labels) != len(ids):
        labels = [IGNORE] * len(ids)
    pad = tokenizer.pad_token_id
    start, stop = 0, len(ids)  # padding of the official modes is left out, as --show leaves it out
    while stop > start and ids[stop - 1] == pad and labels[stop - 1] == IGNORE:
        stop -= 1
    while start < stop and ids[start] == pad and labels[start] == IGNORE:
        start += 1
    ids, labels = ids[start:stop], list(labels[start:stop])
    specials = set(dict(getattr(tokenizer, "index_special_tokens", {})))
    pieces = tokenizer.convert_ids_to_tokens(ids[:MAX_TOKENS_SHOWN])
    chips = []
    for t, label, piece in zip(ids, labels, pieces, strict=False):
        kind = " ".join(k for k, on in (("special", t in specials), ("loss", label != IGNORE)) if on)
        text = html.escape(str(piece)) or f"&lt;{t}&gt;"
        chips.append(f'<span class="tok {kind}" title="id {t}, label {label}">{text}</span>')
    more = f" … and {len(ids) - MAX_TOKENS_SHOWN} more" if len(ids) > MAX_TOKENS_SHOWN else ""
    return f"<details><summary>tokens and loss mask</summary><div>{''.join(chips)}{more}</div></details>"


def render_preview(raw: dict[str, Any], k: int) -> Preview:
    """The first ``k`` training samples of the config ``raw`` and the statistics of all of them."""
    from glmtune.config import build_config
    from glmtune.data.preprocess import model_tokenizer
    from glmtune.data.record import Report
    from glmtune.data.stats import dataset_stats
    from glmtune.train.datasets import build_datasets

    cfg = build_config(raw, source="board")
    cfg.data = dataclasses.replace(cfg.data, eval=[], test=[])
    tokenizer, family = model_tokenizer(Path(cfg.model.path), cfg.model.family)
    data = build_datasets(cfg, tokenizer, family)
    ds = data.train
    samples = ds.select(range(min(k, len(ds)))).to_list()
    parts = [STYLE, '<div class="glm-preview">', LEGEND]
    for i, sample in enumerate(samples):
        labels = sample.get("labels") or []
        n_loss = sum(1 for x in labels if x != IGNORE)
        parts.append(f"<h4>sample {i + 1}: {len(sample['input_ids'])} tokens, {n_loss} with loss</h4>")
        parts.append(sample_html(sample, tokenizer))
    parts.append("</div>")
    report = data.reports.get("train") or Report()
    stats = dataset_stats(ds, data.mode, tokenizer.pad_token_id, data.settings, report.truncated)
    notes = [f"skipped: {issue}" for issue in report.invalid] + [f"note: {n}" for n in report.notes]
    return Preview("".join(parts), stats, len(ds), notes)
