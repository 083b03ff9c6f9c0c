"""Evaluation: BLEU-4 / ROUGE exactly as the official ChatGLM scripts, and predictions files."""

from __future__ import annotations

from glmtune.evaluate.metrics import METRIC_KEYS, VARIANTS, compute_metrics, is_empty_pair, score_pair
from glmtune.evaluate.predictions import read_predictions

__all__ = ["METRIC_KEYS", "VARIANTS", "compute_metrics", "is_empty_pair", "read_predictions", "score_pair"]
