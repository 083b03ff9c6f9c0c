"""From the data section of a training config to the Trainer's datasets and collator (glmtune.data does the work)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtune.config.schema import TrainConfig
from glmtune.data.record import Report
from glmtune.data.render.modes import Mode, ModeSettings, get_mode
from glmtune.errors import GlmtuneError
from glmtune.families import Family


@dataclass
class TrainData:
    train: Any
    eval: Any
    test: Any
    collator: Any
    reports: dict[str, Report]  # per split: records, samples, truncated, skipped
    mode: Mode
    settings: ModeSettings  # the mode's settings, validated, columns inferred

    def summary(self) -> list[str]:
        """One line per split: what the data became (truncation and skips are never silent)."""
        max_length = self.settings.limit()
        lines = []
        for split, r in self.reports.items():
            line = f"{split}: {r.samples} samples from {r.records} records"
            if r.truncated:
                line += f", {r.truncated} truncated" + (f" to {max_length} tokens" if max_length else "")
            if r.invalid:
                line += f", {len(r.invalid)} invalid skipped"
            lines.append(line)
        return lines


def build_datasets(cfg: TrainConfig, tokenizer: Any, family: Family) -> TrainData:
    """Rendered (and cached) train/eval/test datasets plus the collator for ``cfg``."""
    from glmtune.data.collate import make_collator
    from glmtune.data.pipeline import prepare_dataset
    from glmtune.data.preprocess import data_source

    d = cfg.data
    mode = get_mode(d.mode, "data.mode")
    # the same column mapping as `preprocess --columns`, and the same ptuning column inference
    source = data_source(d.format, d.columns or None, d.dataset_info, ("data.columns", "data.dataset_info"))
    train_paths = list(d.train) or ([str(source.data_file)] if source.data_file else [])
    if not train_paths:
        raise GlmtuneError(f"{cfg.source}: data.train is required (or a data.dataset_info entry with a file_name)")
    settings = mode.from_config(d, [Path(p) for p in train_paths], None, source.fmt, source.columns)
    reports: dict[str, Report] = {}

    def build(split: str, paths: list[str], limit: int | None = None) -> Any:
        if not paths:
            return None
        report = reports.setdefault(split, Report())
        ds = prepare_dataset(
            paths,
            tokenizer,
            family,
            mode=d.mode,
            **source.render_args(mode),
            skip_invalid=d.skip_invalid,
            num_proc=d.num_proc,
            report=report,
            **settings.kwargs(),
        )
        if limit is not None and len(ds) > limit:
            ds = ds.select(range(limit))
        return ds

    train = build("train", train_paths)
    if train is None or len(train) == 0:
        raise GlmtuneError(f"data.train {train_paths}: no usable records")
    collator = make_collator(tokenizer, pack=d.pack)
    return TrainData(
        train=train,
        eval=build("eval", d.eval, d.max_eval_samples),
        test=build("test", d.test, d.max_eval_samples),
        collator=collator,
        reports=reports,
        mode=mode,
        settings=settings,
    )
