"""Every data-preprocessing case of ``$GLMTUNE_FIXTURES/prep`` against the official-compatible modes, exactly.

Cases are discovered from the fixture files at collection time (no case skipped or filtered), so the same tests
run on the larger private set. ``metrics.json`` holds evaluation-metric cases (mode ``metrics``), which the
evaluate package's fidelity tests own; any other unknown mode fails here.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from glmtune.data.record import RecordError
from glmtune.data.render.official import chatglm3_demo, finetune_demo, ptuning
from glmtune.data.render.official.common import BatchResult
from glmtune.errors import GlmtuneError
from glmtune.families import get_family
from glmtune.tokenization import load_tokenizer
from tests.conftest import fixtures_dir

PREP = fixtures_dir("prep")
DATA_MODES = (
    "chatglm3-multiturn",
    "chatglm3-input-output",
    "chatglm3-finetune-demo",
    "chatglm2-ptuning",
    "chatglm-ptuning",
)
NOT_DATA = ("metrics",)


def _cases() -> list[Any]:
    params = []
    for path in sorted(PREP.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        mode = doc["mode"]
        if mode in NOT_DATA:
            continue
        assert mode in DATA_MODES, f"{path}: unknown prep mode {mode!r}"
        for case in doc["cases"]:
            params.append(pytest.param(mode, doc["tokenizer"], case, id=f"{mode}/{case['id']}"))
    return params


@cache
def _tokenizer(rel: str) -> Any:
    family = get_family(Path(rel).name)
    return load_tokenizer(PREP / rel, family)


def expand(value: Any) -> Any:
    """Expected values with every run-length tail ``{"repeat": v, "times": n}`` expanded."""
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, dict) and set(item) == {"repeat", "times"}:
                out += [item["repeat"]] * item["times"]
            else:
                out.append(expand(item))
        return out
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    return value


def _columns(result: BatchResult, keys: tuple[str, ...]) -> dict[str, list[Any]]:
    result.raise_errors()
    return {k: [o[k] for o in result.outputs] for k in keys}


def _mask_digest(mask: Any) -> dict[str, Any]:
    import numpy as np

    arr = np.asarray(mask).astype(bool)
    text = "".join("1" if v else "0" for v in arr.reshape(-1).tolist())
    return {"shape": list(arr.shape), "sha256_01": hashlib.sha256(text.encode()).hexdigest()}


def _run(mode: str, tok: Any, case: dict[str, Any]) -> dict[str, Any]:
    s = dict(case["settings"])
    if mode == "chatglm3-multiturn":
        return chatglm3_demo.multiturn(case["record"], tok, s["max_seq_length"])[0]
    if mode == "chatglm3-input-output":
        return chatglm3_demo.input_output(case["record"], tok, s["max_source_length"], s["max_target_length"])[0]
    if mode == "chatglm3-finetune-demo":
        records, lengths = case["records"], (s["max_input_length"], s["max_output_length"])
        fn = s["function"]
        if fn == "process_batch":
            return _columns(finetune_demo.process_batch(records, tok, *lengths), ("input_ids", "labels"))
        if fn == "process_batch_eval":
            return _columns(finetune_demo.process_batch_eval(records, tok, *lengths), ("input_ids", "output_ids"))
        assert fn == "DataCollatorForSeq2Seq", fn
        variant = s["features_from"].split("@")[1]
        make = finetune_demo.process_batch if variant == "train" else finetune_demo.process_batch_eval
        result = make(records, tok, *lengths)
        result.raise_errors()
        return {k: v.tolist() for k, v in finetune_demo.collate(result.outputs, tok).items()}
    fn = s.pop("function")
    settings = ptuning.PtuningSettings(**s)
    if mode == "chatglm2-ptuning":
        if fn == "preprocess_function_train":
            return _columns(ptuning.chatglm2_train(case["records"], tok, settings), ("input_ids", "labels"))
        keys = ("input_ids", "attention_mask", "position_ids", "labels")
        return _columns(ptuning.chatglm2_eval(case["records"], tok, settings), keys)
    from glmtune.data.render.official import chatglm_ptuning

    if fn == "preprocess_function_train":
        return _columns(chatglm_ptuning.train(case["records"], tok, settings), ("input_ids", "labels"))
    out = _columns(
        chatglm_ptuning.eval_(case["records"], tok, settings), ("input_ids", "attention_mask", "position_ids", "labels")
    )
    out["attention_mask"] = _mask_digest(out["attention_mask"])
    return out


@pytest.mark.parametrize(("mode", "tokenizer", "case"), _cases())
def test_prep_case(mode: str, tokenizer: str, case: dict[str, Any]) -> None:
    tok = _tokenizer(tokenizer)
    expected = case["expected"]
    if "error" in expected:
        with pytest.raises((RecordError, GlmtuneError)):
            _run(mode, tok, case)
        return
    got = _run(mode, tok, case)
    assert got == expand(expected)
