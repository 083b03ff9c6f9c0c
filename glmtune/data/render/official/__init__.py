"""Official-compatible modes: each reproduces one official THUDM processor token for token, on raw records.

They take records exactly as read (no normalisation: the official code's own accept/refuse rules apply) and
return the official output keys. ``glmtune preprocess --mode NAME`` and :func:`glmtune.data.render_records` run
them in batches of ``batch_size`` records (``datasets.map``'s default, which decides eval padding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from glmtune.data.record import RecordError
from glmtune.data.render.official.common import BatchError, BatchResult
from glmtune.errors import GlmtuneError


@dataclass(frozen=True)
class OfficialMode:
    """One official processor: the family whose tokenizer it needs, its settings and their defaults."""

    name: str
    family: str
    title: str
    defaults: dict[str, Any]
    variants: tuple[str, ...] = ("train",)
    batch_size: int = 1000
    _run: Callable[..., BatchResult] | None = field(default=None, repr=False)

    def run(self, records: list[Any], tokenizer: Any, variant: str = "train", **settings: Any) -> BatchResult:
        """Outputs of one batch of raw records (errors per record in ``BatchResult.errors``)."""
        if variant not in self.variants:
            raise GlmtuneError(f"mode {self.name} has no {variant!r} variant (has: {', '.join(self.variants)})")
        unknown = set(settings) - set(self.defaults)
        if unknown:
            raise GlmtuneError(
                f"mode {self.name} has no setting {', '.join(sorted(unknown))} (settings: {', '.join(self.defaults)})"
            )
        values = {**self.defaults, **{k: v for k, v in settings.items() if v is not None}}
        assert self._run is not None
        return self._run(records, tokenizer, variant, values)


def _per_record(fn: Callable[..., tuple[dict[str, Any], bool]]) -> Callable[..., BatchResult]:
    def run(records: list[Any], tokenizer: Any, variant: str, values: dict[str, Any]) -> BatchResult:
        result = BatchResult()
        for i, record in enumerate(records):
            try:
                out, cut = fn(record, tokenizer, **values)
            except RecordError as e:
                result.errors.append((i, e))
                continue
            result.outputs.append(out)
            result.owners.append(i)
            if cut:
                result.truncated.add(i)
        return result

    return run


def _finetune_demo(records: list[Any], tokenizer: Any, variant: str, values: dict[str, Any]) -> BatchResult:
    from glmtune.data.render.official.finetune_demo import process_batch, process_batch_eval

    fn = process_batch if variant == "train" else process_batch_eval
    try:
        return fn(records, tokenizer, values["max_input_length"], values["max_output_length"])
    except BatchError as e:
        return BatchResult(errors=e.errors)


def _ptuning(module: str, train: str, eval_: str) -> Callable[..., BatchResult]:
    """A ptuning processor pair: ``module``'s ``train`` / ``eval_`` functions over :class:`PtuningSettings`."""

    def run(records: list[Any], tokenizer: Any, variant: str, values: dict[str, Any]) -> BatchResult:
        from glmtune.data.render.official.ptuning import PtuningSettings

        fn = getattr(import_module(f"glmtune.data.render.official.{module}"), train if variant == "train" else eval_)
        try:
            return fn(records, tokenizer, PtuningSettings(**values))
        except BatchError as e:
            return BatchResult(errors=e.errors)

    return run


def _multiturn(record: Any, tokenizer: Any, max_seq_length: int) -> tuple[dict[str, Any], bool]:
    from glmtune.data.render.official.chatglm3_demo import multiturn

    return multiturn(record, tokenizer, max_seq_length)


def _input_output(
    record: Any, tokenizer: Any, max_source_length: int, max_target_length: int
) -> tuple[dict[str, Any], bool]:
    from glmtune.data.render.official.chatglm3_demo import input_output

    return input_output(record, tokenizer, max_source_length, max_target_length)


_PTUNING_DEFAULTS = {
    "prompt_column": "content",
    "response_column": "summary",
    "history_column": None,
    "max_source_length": 64,
    "max_target_length": 128,
    "ignore_pad_token_for_loss": True,
    "source_prefix": "",
}

OFFICIAL_MODES: dict[str, OfficialMode] = {
    m.name: m
    for m in (
        OfficialMode(
            "chatglm3-multiturn",
            "chatglm3",
            "ChatGLM3 finetune_chatmodel_demo MultiTurnDataset",
            {"max_seq_length": 2048},
            _run=_per_record(_multiturn),
        ),
        OfficialMode(
            "chatglm3-input-output",
            "chatglm3",
            "ChatGLM3 finetune_chatmodel_demo InputOutputDataset",
            {"max_source_length": 1024, "max_target_length": 128},
            _run=_per_record(_input_output),
        ),
        OfficialMode(
            "chatglm3-finetune-demo",
            "chatglm3",
            "ChatGLM3 finetune_demo process_batch / process_batch_eval",
            {"max_input_length": 256, "max_output_length": 512},
            ("train", "eval"),
            _run=_finetune_demo,
        ),
        OfficialMode(
            "chatglm2-ptuning",
            "chatglm2",
            "ChatGLM2-6B ptuning preprocess_function_train / _eval",
            dict(_PTUNING_DEFAULTS),
            ("train", "eval"),
            _run=_ptuning("ptuning", "chatglm2_train", "chatglm2_eval"),
        ),
        OfficialMode(
            "chatglm-ptuning",
            "chatglm",
            "ChatGLM-6B ptuning preprocess_function_train / _eval",
            dict(_PTUNING_DEFAULTS),
            ("train", "eval"),
            _run=_ptuning("chatglm_ptuning", "train", "eval_"),
        ),
    )
}


def get_mode(name: str) -> OfficialMode:
    if name not in OFFICIAL_MODES:
        raise GlmtuneError(f"unknown mode {name!r}; known: default, {', '.join(OFFICIAL_MODES)}")
    return OFFICIAL_MODES[name]


__all__ = ["OFFICIAL_MODES", "BatchError", "BatchResult", "OfficialMode", "get_mode"]
