"""ROUGE-1/2/L and BLEU-4 computed exactly as the official ChatGLM fine-tuning scripts compute them.

Two variants, matching the official ``compute_metrics`` functions:

* ``finetune-demo`` (ChatGLM3 ``finetune_demo/finetune_hf.py``): both texts are whitespace-stripped; BLEU-4 on
  jieba words, in 0-1, unrounded.
* ``ptuning`` (ChatGLM-6B and ChatGLM2-6B ``ptuning/main.py``): texts as given; BLEU-4 on characters, x100,
  rounded to 4 places.

In both, ROUGE is rouge_chinese's f-score on jieba words (space-joined), x100 and rounded to 4 places per pair,
BLEU-4 is nltk ``sentence_bleu`` with ``SmoothingFunction().method3``, and each metric is the numpy mean of the
per-pair scores. Where the official code raises on one empty/whitespace-only prediction or reference (failing
the whole evaluation), we score that pair 0 for every metric and count it in ``empty_pairs``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from glmtune.errors import GlmtuneError

VARIANTS: tuple[str, ...] = ("finetune-demo", "ptuning")
ROUGE_KEYS: tuple[str, ...] = ("rouge-1", "rouge-2", "rouge-l")
METRIC_KEYS: tuple[str, ...] = (*ROUGE_KEYS, "bleu-4")


@functools.cache
def _backend() -> tuple[Callable[[str], list[str]], Any, Callable[[list[list[str]], list[str]], float]]:
    """(jieba word cut, rouge_chinese ``Rouge``, smoothed ``sentence_bleu``), built once, jieba kept quiet."""
    import jieba
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict ..." on stderr
    words = jieba.Tokenizer()  # private instance: same default dictionary, immune to user add_word() calls
    words.initialize()
    bleu = functools.partial(sentence_bleu, smoothing_function=SmoothingFunction().method3)
    return words.lcut, Rouge(), bleu


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise GlmtuneError(f"metrics: variant: unknown {variant!r} (expected one of {', '.join(VARIANTS)})")


def is_empty_pair(prediction: str, reference: str) -> bool:
    """True where the official code raises: a prediction or reference that is empty or only whitespace."""
    return not prediction.strip() or not reference.strip()


def score_pair(prediction: str, reference: str, variant: str = "finetune-demo") -> dict[str, float] | None:
    """Official per-pair scores ``{rouge-1, rouge-2, rouge-l, bleu-4}``, or None for an empty pair."""
    _check_variant(variant)
    if is_empty_pair(prediction, reference):
        return None
    cut, rouge, bleu = _backend()
    if variant == "finetune-demo":
        prediction, reference = prediction.strip(), reference.strip()
    hyp_words, ref_words = cut(prediction), cut(reference)
    rouge_scores = rouge.get_scores(" ".join(hyp_words), " ".join(ref_words))[0]
    scores = {key: round(rouge_scores[key]["f"] * 100, 4) for key in ROUGE_KEYS}
    if variant == "finetune-demo":
        scores["bleu-4"] = float(bleu([ref_words], hyp_words))  # nltk returns int 0 when nothing matches
    else:
        scores["bleu-4"] = round(bleu([list(reference)], list(prediction)) * 100, 4)
    return scores


def compute_metrics(
    predictions: Sequence[str], references: Sequence[str], variant: str = "finetune-demo"
) -> dict[str, Any]:
    """Mean official scores over all pairs, plus ``count`` (pairs) and ``empty_pairs`` (pairs scored 0)."""
    _check_variant(variant)
    if len(predictions) != len(references):
        raise GlmtuneError(
            f"metrics: {len(predictions)} predictions but {len(references)} references (they must pair up)"
        )
    if not predictions:
        raise GlmtuneError("metrics: no prediction/reference pairs to score")
    for i, (pred, ref) in enumerate(zip(predictions, references, strict=True)):
        for name, text in (("prediction", pred), ("reference", ref)):
            if not isinstance(text, str):
                raise GlmtuneError(f"metrics: pair {i}: {name}: expected a string, got {type(text).__name__}")

    per_metric: dict[str, list[float]] = {key: [] for key in METRIC_KEYS}
    empty = 0
    for pred, ref in zip(predictions, references, strict=True):
        scores = score_pair(pred, ref, variant)
        if scores is None:
            empty += 1
            scores = dict.fromkeys(METRIC_KEYS, 0.0)
        for key in METRIC_KEYS:
            per_metric[key].append(scores[key])
    result: dict[str, Any] = {key: float(np.mean(values)) for key, values in per_metric.items()}
    result["count"] = len(predictions)
    result["empty_pairs"] = empty
    return result
