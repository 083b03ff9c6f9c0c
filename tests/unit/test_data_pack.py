"""Collators and packing: packed rows give exactly the unpacked loss on a tiny native GLM model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import transformers

from glmtune.data import render_records
from glmtune.data.collate import make_collator
from glmtune.data.pack import pack_dataset, pack_groups, packed_ratio
from glmtune.data.parallel import Columns
from glmtune.families import get_family
from glmtune.tokenization import load_tokenizer
from tests.conftest import fixtures_dir


@pytest.fixture(scope="module")
def tok() -> Any:
    return load_tokenizer(fixtures_dir("prep", "tokenizers", "chatglm3"), get_family("chatglm3"))


@pytest.fixture(scope="module")
def samples(tok: Any) -> list[dict[str, list[int]]]:
    recs = [
        {
            "conversations": [
                {"role": "user", "content": "你好" * k},
                {"role": "assistant", "content": "hello " * (k + 1)},
                {"role": "user", "content": "more"},
                {"role": "assistant", "content": "ok " * k, "loss": k % 2 == 0},
            ]
        }
        for k in (1, 5, 9, 2, 3)
    ]
    return render_records(recs, tok, "chatglm3")


def _tiny_model(attn: str) -> Any:
    torch.manual_seed(0)
    cfg = transformers.GlmConfig(
        vocab_size=4016,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        pad_token_id=0,
        eos_token_id=2,
        partial_rotary_factor=0.5,
    )
    cfg._attn_implementation = attn
    return transformers.GlmForCausalLM(cfg).eval()


def _sum_and_count(model: Any, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
    """Summed token loss over all label tokens of a batch (HF shifts labels inside the model)."""
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False)
    logits, labels = out.logits[:, :-1], batch["labels"][:, 1:]
    keep = labels != -100
    loss = torch.nn.functional.cross_entropy(logits[keep].float(), labels[keep], reduction="sum")
    return float(loss), int(keep.sum())


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_unpacked_loss(tok: Any, samples: list[dict[str, list[int]]], attn: str) -> None:
    model = _tiny_model(attn)
    padded = make_collator(tok)(samples)
    flat = make_collator(tok, pack=True)(samples)
    assert flat["input_ids"].shape == (1, sum(len(s["input_ids"]) for s in samples)) and "attention_mask" not in flat
    s_pad, n_pad = _sum_and_count(model, padded)
    s_flat, n_flat = _sum_and_count(model, flat)
    assert n_pad == n_flat
    assert abs(s_pad / n_pad - s_flat / n_flat) <= 1e-5
    with torch.no_grad():  # and the model's own loss (mean over the batch's label tokens)
        hf_pad = model(**padded, use_cache=False).loss
        hf_flat = model(**flat, use_cache=False).loss
    assert abs(float(hf_pad) - float(hf_flat)) <= 1e-5


def test_offline_packed_rows_give_the_same_loss(tok: Any, samples: list[dict[str, list[int]]]) -> None:
    import datasets

    model = _tiny_model("sdpa")
    ds = datasets.Dataset.from_list(samples)
    packed = pack_dataset(ds, max_length=120)
    assert len(packed) < len(ds) and max(packed["length"]) <= 120
    s_rows, n_rows = _sum_and_count(model, make_collator(tok, pack=True)(packed.to_list()))
    s_pad, n_pad = _sum_and_count(model, make_collator(tok)(samples))
    assert n_rows == n_pad and abs(s_rows / n_rows - s_pad / n_pad) <= 1e-5


def test_pad_collator_right_and_left(tok: Any, samples: list[dict[str, list[int]]]) -> None:
    right = make_collator(tok)(samples[:2])
    left = make_collator(tok, padding_side="left", pad_to_multiple_of=8)(samples[:2])
    n0, n1 = len(samples[0]["input_ids"]), len(samples[1]["input_ids"])
    assert right["input_ids"].shape[1] == max(n0, n1) and left["input_ids"].shape[1] % 8 == 0
    assert right["attention_mask"][0].sum() == n0 and right["labels"][0, n0:].eq(-100).all()
    width = left["input_ids"].shape[1]
    assert left["input_ids"][0, : width - n0].eq(tok.pad_token_id).all()
    assert left["position_ids"][0, width - n0 :].tolist() == list(range(n0))


def test_pack_groups_respect_the_row_length() -> None:
    lengths = [700, 1500, 300, 2048, 100, 900, 1200, 20, 5000]
    rows = pack_groups(lengths, 2048)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 2048 for r in rows if len(r) > 1)
    assert packed_ratio([100] * 2000, 2048) >= 0.97


def test_prepared_columns_have_a_length_column_for_group_by_length(
    tok: Any, samples: list[dict[str, list[int]]]
) -> None:
    import numpy as np

    ids = [s["input_ids"] for s in samples]
    offsets = np.cumsum([0] + [len(x) for x in ids])
    flat = np.array([t for x in ids for t in x], dtype=np.int32)
    chunks = [(flat, offsets)]
    ds = Columns({"input_ids": chunks, "labels": chunks}, None, range(len(ids))).to_dataset()
    assert ds["length"] == [len(x) for x in ids] and ds[2]["input_ids"] == ids[2]


def test_stats_name_the_row_length_they_measure() -> None:
    from glmtune.data.stats import format_stats, length_stats

    fits = length_stats([10, 20, 30, 40], max_length=40)
    assert fits["row_length"] == 40 and fits["useful_ratio_padded"] == 100 / 160
    assert "useful-token ratio at 40: padded 0.625" in format_stats(fits)
    longer = length_stats([10, 20, 30, 100], max_length=40)  # not truncated: rows as long as the longest
    assert longer["row_length"] == 100 and longer["useful_ratio_padded"] == 160 / 400
    assert "useful-token ratio at 100 (the longest sample, longer than 40): padded 0.400" in format_stats(longer)
