"""Unit tests of glmtune.evaluate: empty pairs, variants, argument errors, predictions files, properties."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jieba
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmtune.errors import GlmtuneError
from glmtune.evaluate import METRIC_KEYS, VARIANTS, compute_metrics, is_empty_pair, read_predictions, score_pair

ZH_PRED, ZH_REF = "北京是中国的首都", "中国的首都是北京"
ALPHABET = "北京是中国的首都好衣服看这件 abcXYZ019。！？?，.…”’\t\n\u3000"
texts = st.text(alphabet=ALPHABET, max_size=24) | st.text(max_size=8)


# ------------------------------------------------------------------------------------------------ compute_metrics


def test_result_keys_and_types() -> None:
    result = compute_metrics([ZH_PRED], [ZH_REF])
    assert set(result) == {*METRIC_KEYS, "count", "empty_pairs"}
    assert all(type(result[key]) is float for key in METRIC_KEYS)
    assert (result["count"], result["empty_pairs"]) == (1, 0)


def test_known_official_values() -> None:
    demo = compute_metrics([ZH_PRED], [ZH_REF], "finetune-demo")
    ptuning = compute_metrics([ZH_PRED], [ZH_REF], "ptuning")
    for key in ("rouge-1", "rouge-2", "rouge-l"):
        assert demo[key] == ptuning[key] == {"rouge-1": 100.0, "rouge-2": 50.0, "rouge-l": 60.0}[key]
    assert demo["bleu-4"] == pytest.approx(0.4518010018049224, abs=1e-12)  # jieba words, 0-1, unrounded
    assert ptuning["bleu-4"] == 61.4788  # characters, x100, 4 places


def test_whitespace_strip_changes_only_finetune_demo_bleu() -> None:
    padded = compute_metrics([f"  {ZH_PRED}\n"], [ZH_REF], "finetune-demo")
    assert padded == compute_metrics([ZH_PRED], [ZH_REF], "finetune-demo")
    ptuning = compute_metrics([f"  {ZH_PRED}\n"], [ZH_REF], "ptuning")
    assert ptuning["bleu-4"] != compute_metrics([ZH_PRED], [ZH_REF], "ptuning")["bleu-4"]
    assert all(ptuning[key] == padded[key] for key in ("rouge-1", "rouge-2", "rouge-l"))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("prediction", "reference"), [("", ""), ("", "好"), (" \t\n", "好"), ("好", ""), ("好", "\u3000")]
)
def test_empty_pair_scores_zero(variant: str, prediction: str, reference: str) -> None:
    assert is_empty_pair(prediction, reference)
    assert score_pair(prediction, reference, variant) is None
    result = compute_metrics([prediction], [reference], variant)
    assert result == {**dict.fromkeys(METRIC_KEYS, 0.0), "count": 1, "empty_pairs": 1}


@pytest.mark.parametrize("variant", VARIANTS)
def test_empty_pairs_count_as_zero_in_the_mean(variant: str) -> None:
    alone = compute_metrics([ZH_PRED, "好"], [ZH_REF, "好的"], variant)
    mixed = compute_metrics([ZH_PRED, "", "好", "x"], [ZH_REF, "ref", "好的", " "], variant)
    assert (mixed["count"], mixed["empty_pairs"]) == (4, 2)
    for key in METRIC_KEYS:
        assert mixed[key] == pytest.approx(alone[key] / 2, abs=1e-9)


def test_unknown_variant() -> None:
    with pytest.raises(GlmtuneError, match=r"unknown 'bleu'.*finetune-demo, ptuning"):
        compute_metrics(["a"], ["a"], "bleu")
    with pytest.raises(GlmtuneError, match="variant"):
        score_pair("a", "a", "chatglm3")


def test_argument_errors() -> None:
    with pytest.raises(GlmtuneError, match="2 predictions but 1 references"):
        compute_metrics(["a", "b"], ["a"])
    with pytest.raises(GlmtuneError, match="no prediction/reference pairs"):
        compute_metrics([], [])
    with pytest.raises(GlmtuneError, match="pair 1: reference: expected a string, got NoneType"):
        compute_metrics(["a", "b"], ["a", None])  # type: ignore[list-item]


def test_jieba_is_quiet_in_a_fresh_process() -> None:
    code = "from glmtune.evaluate import compute_metrics; compute_metrics(['北京'], ['北京'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "prefix dict" not in done.stderr.lower(), done.stderr
    assert done.stderr == ""


# ------------------------------------------------------------------------------------------------ properties


@settings(max_examples=150, deadline=None)
@given(text=texts, variant=st.sampled_from(VARIANTS))
def test_identical_pair_scores_the_maximum(text: str, variant: str) -> None:
    result = compute_metrics([text], [text], variant)
    if not text.strip():
        assert result["empty_pairs"] == 1
        return
    assert result["rouge-1"] == result["rouge-l"] == 100.0
    assert result["rouge-2"] in (0.0, 100.0)  # 0 when there is only one word (no bigram): official behaviour
    tokens = jieba.lcut(text.strip()) if variant == "finetune-demo" else list(text)
    if len(tokens) >= 4:  # every n-gram order present: no smoothing, BLEU exactly at its maximum
        assert result["bleu-4"] == (1.0 if variant == "finetune-demo" else 100.0)


@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(texts, texts), min_size=1, max_size=4), variant=st.sampled_from(VARIANTS))
def test_scores_bounded_and_averaged(pairs: list[tuple[str, str]], variant: str) -> None:
    predictions, references = [p for p, _ in pairs], [r for _, r in pairs]
    result = compute_metrics(predictions, references, variant)
    assert result["count"] == len(pairs)
    assert result["empty_pairs"] == sum(is_empty_pair(p, r) for p, r in pairs)
    bleu_max = 1.0 if variant == "finetune-demo" else 100.0
    for key in METRIC_KEYS:
        assert 0.0 <= result[key] <= (bleu_max if key == "bleu-4" else 100.0)
        singles = [compute_metrics([p], [r], variant)[key] for p, r in pairs]
        assert result[key] == pytest.approx(sum(singles) / len(singles), abs=1e-9)


# ------------------------------------------------------------------------------------------------ read_predictions


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "preds.jsonl"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_read_predictions(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "prediction": "好", "reference": "好的"},
        {"prediction": "x\ny", "reference": ""},
        {"id": 7, "prediction": "p", "reference": "r", "extra": 1},
    ]
    path = _write(
        tmp_path, "\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:2]) + "\n\n" + json.dumps(rows[2]) + "\n"
    )
    assert read_predictions(path) == (["好", "x\ny", "p"], ["好的", "", "r"], ["a", None, "7"])


def test_read_predictions_accepts_bom_and_crlf(tmp_path: Path) -> None:
    path = _write(
        tmp_path, b'\xef\xbb\xbf{"prediction": "a", "reference": "b"}\r\n{"prediction": "c", "reference": "d"}\r\n'
    )
    assert read_predictions(path) == (["a", "c"], ["b", "d"], [None, None])


def test_read_predictions_lists_every_bad_line(tmp_path: Path) -> None:
    lines = [
        '{"prediction": "ok", "reference": "ok"}',
        '{"prediction": "broken"',
        '{"reference": "no prediction"}',
        '{"prediction": 3, "reference": null}',
        "[1, 2]",
        "",
        '{"prediction": "a", "reference": "b", "id": [1]}',
    ]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(GlmtuneError) as info:
        read_predictions(path)
    message = str(info.value)
    expected = [
        f"{path}:2: invalid JSON:",
        f"{path}:3: prediction: missing",
        f"{path}:4: prediction: expected a string, got number",
        f"{path}:4: reference: expected a string, got null",
        f"{path}:5: expected a JSON object, got array",
        f"{path}:7: id: expected a string or integer, got array",
    ]
    for part in expected:
        assert part in message
    assert "\n" not in message  # the CLI prints it on one line
    assert len(info.value.errors) == len(expected)  # type: ignore[attr-defined]
    assert ":1:" not in message


def test_read_predictions_bad_utf8(tmp_path: Path) -> None:
    path = _write(tmp_path, b'{"prediction": "a", "reference": "b"}\n{"prediction": "\xff", "reference": "b"}\n')
    with pytest.raises(GlmtuneError, match=r":2: not valid UTF-8"):
        read_predictions(path)


def test_read_predictions_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(GlmtuneError, match="cannot read predictions"):
        read_predictions(tmp_path / "nope.jsonl")
    with pytest.raises(GlmtuneError, match="no predictions"):
        read_predictions(_write(tmp_path, "\n  \n"))
