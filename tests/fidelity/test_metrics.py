"""Our metrics against what the official ChatGLM ``compute_metrics`` functions returned (prep/metrics.json).

Every case in the file is one test (the same test runs on a larger private set with the same schema).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from glmtune.evaluate import METRIC_KEYS, compute_metrics
from tests.conftest import fixtures_dir

TOLERANCE = 1e-9
VARIANT_OF_FUNCTION = {
    "finetune_hf.compute_metrics": "finetune-demo",
    "chatglm2_ptuning.compute_metrics": "ptuning",
    "chatglm_ptuning.compute_metrics": "ptuning",
}
CASES: list[dict[str, Any]] = json.loads((fixtures_dir("prep") / "metrics.json").read_text(encoding="utf-8"))["cases"]


def _pairs(case: dict[str, Any]) -> tuple[list[str], list[str]]:
    records = case["records"] if "records" in case else [case["record"]]
    return [r["prediction"] for r in records], [r["reference"] for r in records]


def _assert_close(ours: dict[str, Any], expected: dict[str, float]) -> None:
    off = {key: (ours[key], want) for key, want in expected.items() if not abs(ours[key] - want) <= TOLERANCE}
    assert not off, f"(ours, expected) differ by more than {TOLERANCE}: {off}"


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_metrics_match_official(case: dict[str, Any]) -> None:
    variant = VARIANT_OF_FUNCTION[case["settings"]["function"]]
    predictions, references = _pairs(case)
    expected = case["expected"]

    ours = compute_metrics(predictions, references, variant)

    assert ours["count"] == len(predictions)
    if "error" not in expected:
        assert set(expected) == set(METRIC_KEYS)
        assert ours["empty_pairs"] == 0
        _assert_close(ours, expected)
        return

    # The official code raised: ours must score the empty pairs 0 and report them, and score the rest officially.
    pairs = list(zip(predictions, references, strict=True))
    empty = [not p.strip() or not r.strip() for p, r in pairs]
    assert ours["empty_pairs"] == sum(empty) > 0, f"official raised {expected['error']!r} but no pair is empty"
    kept = [pair for pair, is_empty in zip(pairs, empty, strict=True) if not is_empty]
    if kept:
        rest = compute_metrics([p for p, _ in kept], [r for _, r in kept], variant)
        _assert_close(ours, {key: rest[key] * len(kept) / len(predictions) for key in METRIC_KEYS})
    else:
        _assert_close(ours, dict.fromkeys(METRIC_KEYS, 0.0))
