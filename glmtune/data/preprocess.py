"""``glmtune preprocess``: data files → one JSON line ``{"input_ids", "labels"}`` per sample, in input order.

Nothing is written when a record is invalid (all of them are listed, exit 2) unless ``skip_invalid``; the output
goes to a temporary sibling and is renamed into place. The command (``glmtune/commands/preprocess.py``) prints
the report, the samples and the statistics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from glmtune.data.formats import FormatSpec, detect, get_spec, spec_from_dataset_info
from glmtune.data.pipeline import DEFAULT_MODE, prepare_dataset
from glmtune.data.read import read_paths
from glmtune.data.record import Report
from glmtune.data.render.official import get_mode
from glmtune.errors import GlmtuneError
from glmtune.families import Family, detect_family, get_family, read_config


def model_tokenizer(model: Path, family: str | None) -> tuple[Any, Family]:
    """The tokenizer of a checkpoint (or tokenizer) directory and its family (detected unless named)."""
    from glmtune.tokenization import load_tokenizer

    fam = get_family(family) if family else detect_family(read_config(model), model)
    return load_tokenizer(model, fam), fam


def parse_columns(columns: str | None) -> tuple[dict[str, Any] | None, FormatSpec | None, Path | None]:
    """``--columns``: a JSON object (our keys, or a LLaMA-Factory ``dataset_info`` entry) → (columns, None,
    None), or ``dataset_info.json:NAME`` → (None, that entry's spec, its data file)."""
    if not columns:
        return None, None, None
    text = columns.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise GlmtuneError(f"--columns: invalid JSON: {e.msg}") from None
        if not isinstance(value, dict):
            raise GlmtuneError("--columns: expected a JSON object")
        return value, None, None
    path, _, name = text.rpartition(":")
    if not path or not name:
        raise GlmtuneError("--columns: expected a JSON object or dataset_info.json:NAME")
    spec, data_file = spec_from_dataset_info(path, name)
    return None, spec, data_file


def ptuning_columns(
    data: Sequence[Path], split: str | None, fmt: str | FormatSpec | None, given: dict[str, Any]
) -> dict[str, Any]:
    """prompt/response/history columns for the ptuning modes from the data's format, unless given."""
    if given.get("prompt_column") and given.get("response_column"):
        return given
    raws, _ = read_paths(data, split)
    spec = get_spec(fmt) or detect(raws, str(data[0]))
    if spec.shape != "pairs":
        raise GlmtuneError(f"{data[0]}: the ptuning modes read prompt/response columns, not {spec.name} messages")
    out = dict(given)
    out.setdefault("prompt_column", spec.col("prompt"))
    out.setdefault("response_column", spec.col("response"))
    history = spec.col("history")
    if "history_column" not in given and history and any(isinstance(r.data, dict) and history in r.data for r in raws):
        out["history_column"] = history
    return {k: v for k, v in out.items() if v is not None}


def write_jsonl(path: Path, dataset: Any) -> int:
    """Rows of ``dataset`` (without ``length``) as JSON lines, atomically."""
    keys = [k for k in dataset.column_names if k != "length"]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with open(tmp, "wb") as f:
            for batch in dataset.select_columns(keys).iter(batch_size=1000):
                cols = [batch[k] for k in keys]
                for values in zip(*cols, strict=True):
                    f.write(orjson.dumps(dict(zip(keys, values, strict=True))))
                    f.write(b"\n")
                    n += 1
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


@dataclass
class Preprocessed:
    """What :func:`preprocess` did: the rendered dataset, the rows written and the report of the records."""

    dataset: Any
    written: int
    report: Report
    tokenizer: Any
    settings: dict[str, Any]


def preprocess(
    model: Path,
    data: Sequence[Path],
    output: Path,
    *,
    family: str | None = None,
    fmt: str | None = None,
    columns: str | None = None,
    mode: str = DEFAULT_MODE,
    variant: str = "train",
    settings: dict[str, Any] | None = None,
    split: str | None = None,
    skip_invalid: bool = False,
    num_proc: int | None = None,
    use_cache: bool = True,
) -> Preprocessed:
    """Render ``data`` for ``model``'s tokenizer and write it to ``output`` (JSON lines, atomically); prints nothing."""
    tokenizer, fam = model_tokenizer(model, family)
    column_map, info_spec, data_file = parse_columns(columns)
    data = list(data) or ([data_file] if data_file else [])
    spec: str | FormatSpec | None = info_spec or fmt
    if not data:
        raise GlmtuneError("no data: pass --data FILE|DIR")
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    if mode != DEFAULT_MODE:
        m = get_mode(mode)
        if m.name.endswith("ptuning"):
            settings = ptuning_columns(data, split, spec, settings)
    report = Report()
    ds = prepare_dataset(
        data,
        tokenizer,
        fam,
        mode=mode,
        fmt=spec,
        columns=column_map,
        split=split,
        variant=variant,
        skip_invalid=skip_invalid,
        use_cache=use_cache,
        num_proc=num_proc,
        report=report,
        **settings,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    n = write_jsonl(output, ds)
    return Preprocessed(dataset=ds, written=n, report=report, tokenizer=tokenizer, settings=settings)
