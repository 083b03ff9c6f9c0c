"""Every case under $GLMTUNE_FIXTURES/model/<family>/ against glmtune's native loading, tokenizers and templates.

Cases are discovered from the fixture files at collection time; none is skipped or filtered, so the same tests run
unchanged on the larger private set (more families, more cases).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from glmtune.errors import GlmtuneError
from glmtune.families import get_family
from glmtune.model.load import load
from glmtune.model.official_mask import official_attention_mask
from glmtune.tokenization import load_tokenizer
from tests.conftest import fixtures_dir

ROOT = fixtures_dir("model")
FAMILIES = sorted(p.name for p in ROOT.iterdir() if (p / "ckpt").is_dir())


def _cases(filename: str, key: str | None = None) -> list[tuple[str, dict]]:
    out = []
    for fam in FAMILIES:
        path = ROOT / fam / filename
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data.get(key, []) if key else data
        if isinstance(items, dict) and "cases" in items:
            items = items["cases"]
        out += [(fam, case) for case in items]
    return out


def _ids(cases: list[tuple[str, dict]]) -> list[str]:
    return [f"{fam}:{case['id']}" for fam, case in cases]


def _family_name(fam: str) -> str:
    meta = ROOT / fam / "meta.json"
    name = json.loads(meta.read_text())["family"] if meta.is_file() else fam
    return name


@cache
def tokenizer_for(fam: str, compat: bool = True):
    family = get_family(_family_name(fam))
    kwargs = {"compat_official_decode": True} if family.name == "glm4" and compat else {}
    return load_tokenizer(ROOT / fam / "ckpt", family, **kwargs), family


@cache
def model_for(fam: str, attn: str = "sdpa", prefix: str | None = None):
    loaded = load(
        ROOT / fam / "ckpt",
        dtype="fp32",
        family=_family_name(fam),
        attn_implementation=attn,
        prefix=ROOT / fam / prefix if prefix else None,
    )
    loaded.model.eval()
    return loaded.model


def _is_error(value: object) -> bool:
    return isinstance(value, dict) and "error" in value


# ------------------------------------------------------------------------------------------------ tokenizer
TOK_CASES = _cases("tokenizer_cases.json", "cases")


@pytest.mark.parametrize(("fam", "case"), TOK_CASES, ids=_ids(TOK_CASES))
def test_tokenizer_case(fam: str, case: dict) -> None:
    tok, _ = tokenizer_for(fam)
    got = {
        "encode": lambda: tok.encode(case["text"]),
        "encode_no_special": lambda: tok.encode(case["text"], add_special_tokens=False),
        "call_input_ids": lambda: tok(case["text"])["input_ids"],
    }
    for key, fn in got.items():
        if _is_error(case[key]):
            with pytest.raises((GlmtuneError, ValueError, KeyError, IndexError)):
                fn()
        else:
            assert fn() == case[key], key
    if not _is_error(case["encode"]):
        for key, skip in (("decode", False), ("decode_skip_special", True)):
            if _is_error(case[key]):
                # official raised; ours decodes every id it produced (see docs/differences.md)
                assert isinstance(tok.decode(case["encode"], skip_special_tokens=skip), str)
            else:
                assert tok.decode(case["encode"], skip_special_tokens=skip) == case[key], key


BATCH_CASES = _cases("tokenizer_cases.json", "batches")


@pytest.mark.parametrize(("fam", "case"), BATCH_CASES, ids=_ids(BATCH_CASES))
def test_tokenizer_batch(fam: str, case: dict) -> None:
    tok, _ = tokenizer_for(fam)
    kwargs = {"padding": case["padding"]}
    if case.get("max_length"):
        kwargs["max_length"] = case["max_length"]
    out = tok(case["texts"], **kwargs)
    for key in ("input_ids", "attention_mask", "position_ids"):
        assert out[key] == case[key], key


# ------------------------------------------------------------------------------------------------ chat format
MSG_CASES = _cases("chat_cases.json", "build_single_message")


@pytest.mark.parametrize(("fam", "case"), MSG_CASES, ids=_ids(MSG_CASES))
def test_build_single_message(fam: str, case: dict) -> None:
    tok, _ = tokenizer_for(fam)
    assert tok.build_single_message(case["role"], case["metadata"], case["message"]) == case["ids"]


CHAT_INPUT_CASES = _cases("chat_cases.json", "build_chat_input")


@pytest.mark.parametrize(("fam", "case"), CHAT_INPUT_CASES, ids=_ids(CHAT_INPUT_CASES))
def test_build_chat_input(fam: str, case: dict) -> None:
    tok, family = tokenizer_for(fam)
    history = json.loads(json.dumps(case["history"]))
    messages = [*history, {"role": case["role"], "content": case["query"]}]
    ids = family.render_chat(tok, messages)
    assert [ids] == case["input_ids"]
    assert tok.decode(ids) == case["text"]
    assert history == case["history"]  # ours never mutates the caller's history
    # the Jinja twin gives the same ids through apply_chat_template
    assert tok.apply_chat_template(messages, add_generation_prompt=True) == ids


TEMPLATE_CASES = _cases("chat_cases.json", "apply_chat_template")


@pytest.mark.parametrize(("fam", "case"), TEMPLATE_CASES, ids=_ids(TEMPLATE_CASES))
def test_apply_chat_template(fam: str, case: dict) -> None:
    tok, family = tokenizer_for(fam)
    for gen, suffix in ((True, "gen"), (False, "nogen")):
        assert family.render_text(case["messages"], gen, tok.chat_template) == case[f"text_{suffix}"]
        assert (
            tok.apply_chat_template(case["messages"], add_generation_prompt=gen, tokenize=False)
            == case[f"text_{suffix}"]
        )
        # the official tokenizer makes special spellings inside messages control tokens: the documented switch
        ids = tok.apply_chat_template(case["messages"], add_generation_prompt=gen, compat_official_specials=True)
        assert [ids] == case[f"ids_{suffix}"]["input_ids"]
        assert family.render_chat(tok, case["messages"], gen, compat_official_specials=True) == ids
        # glmtune's own template (written by make-tiny) renders the same ids as the checkpoint's
        own = family.render_chat(
            tok, case["messages"], gen, template=family.chat_template(), compat_official_specials=True
        )
        assert own == ids


# ------------------------------------------------------------------------------------------------ forward
FWD_CASES = _cases("forward_cases.json")


def _logits_ref(fam: str, key: str) -> torch.Tensor:
    return _logits_file(fam)[key]


@cache
def _logits_file(fam: str) -> dict[str, torch.Tensor]:
    return load_file(str(ROOT / fam / "logits.safetensors"))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize(("fam", "case"), FWD_CASES, ids=_ids(FWD_CASES))
def test_forward(fam: str, case: dict, attn: str) -> None:
    model = model_for(fam, attn)
    ids = torch.tensor(case["input_ids"])
    mask = torch.tensor(case["attention_mask"]) if case.get("attention_mask") is not None else None
    labels = torch.tensor(case["labels"]) if case.get("labels") is not None else None
    kwargs = {}
    if mask is not None:  # the official forward: arange positions and its padded-batch mask (compat)
        kwargs = {
            "attention_mask": official_attention_mask(mask, torch.float32),
            "position_ids": torch.arange(ids.shape[1]).expand_as(ids),
        }
    if _is_error(case.get("loss")) or case.get("error"):
        pytest.fail("forward error cases are not in the schema")
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels, **kwargs)
    ref = _logits_ref(fam, case["logits_key"])
    got = out.logits[:, case["positions"], :]
    if mask is not None:
        keep = mask[:, case["positions"]].bool()
        assert (got[keep] - ref[keep]).abs().max().item() <= 1e-4
    else:
        assert (got - ref).abs().max().item() <= 1e-4
    assert out.logits.argmax(-1).tolist() == case["argmax_all"]
    if case.get("loss") is not None:
        assert abs(out.loss.item() - case["loss"]) <= 1e-5 * abs(case["loss"])


# ------------------------------------------------------------------------------------------------ generate
GEN_CASES = _cases("generate_cases.json", "cases")


@pytest.mark.parametrize(("fam", "case"), GEN_CASES, ids=_ids(GEN_CASES))
def test_generate_greedy(fam: str, case: dict) -> None:
    model = model_for(fam)
    gen = json.loads((ROOT / fam / "generate_cases.json").read_text())
    ids = torch.tensor(case["input_ids"])
    mask = torch.tensor(case["attention_mask"]) if case.get("attention_mask") else torch.ones_like(ids)
    extra = {}
    if not bool(mask.all()):  # the official generate keeps positions 0..T-1 on left-padded rows (compat)
        extra["position_ids"] = torch.arange(ids.shape[1]).expand_as(ids)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            **extra,
            **gen["kwargs"],
            eos_token_id=gen["generation_config"]["eos_token_id"],
            pad_token_id=gen["generation_config"]["pad_token_id"],
        )
    assert out.tolist() == case["output_ids"]
    tok, _ = tokenizer_for(fam)
    texts = case["text"] if isinstance(case["text"], list) else [case["text"]]
    assert [tok.decode(row[ids.shape[1] :].tolist()) for row in out] == texts


# ------------------------------------------------------------------------------------------------ p-tuning
PT_CASES = _cases("ptuning_cases.json")


@pytest.mark.parametrize(("fam", "case"), PT_CASES, ids=_ids(PT_CASES))
def test_ptuning(fam: str, case: dict) -> None:
    model = model_for(fam, "sdpa", case["ptuning"])
    ids = torch.tensor(case["input_ids"])
    with torch.no_grad():
        if "logits_key" in case:
            mask = torch.tensor(case["attention_mask"]) if case.get("attention_mask") is not None else None
            kwargs = {}
            if mask is not None:  # the official forward: arange positions and its P-Tuning mask (compat)
                kwargs = {
                    "attention_mask": official_attention_mask(mask, torch.float32, ptuning=True),
                    "position_ids": torch.arange(ids.shape[1]).expand_as(ids),
                }
            out = model(input_ids=ids, **kwargs)
            ref = _logits_ref(fam, case["logits_key"])
            got = out.logits[:, case["positions"], :]
            keep = (
                mask[:, case["positions"]].bool() if mask is not None else torch.ones(got.shape[:2], dtype=torch.bool)
            )
            assert (got[keep] - ref[keep]).abs().max().item() <= 1e-4
            assert out.logits.argmax(-1).tolist() == case["argmax_all"]
        else:
            gen = json.loads((ROOT / fam / "generate_cases.json").read_text())
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                **gen["kwargs"],
                eos_token_id=gen["generation_config"]["eos_token_id"],
                pad_token_id=gen["generation_config"]["pad_token_id"],
            )
            assert out.tolist() == case["output_ids"]


def test_every_family_dir_is_known() -> None:
    for fam in FAMILIES:
        get_family(_family_name(fam))
    assert Path(ROOT).is_dir()


# ------------------------------------------------------------------------------------------------ chat()
CHAT_CALLS = _cases("chat_calls.json")


def _engine(fam: str, compat: bool):
    from glmtune.infer import Engine
    from glmtune.model.load import LoadedModel

    tok, family = tokenizer_for(fam)
    loaded = LoadedModel(model=model_for(fam), tokenizer=tok, family=family, layout="original", path=ROOT / fam)
    # prompts as the official chat() tokenizes them (special spellings in messages: see docs/differences.md)
    return Engine(loaded, compat_official_chat=compat, compat_official_specials=True)


@pytest.mark.parametrize(("fam", "case"), CHAT_CALLS, ids=_ids(CHAT_CALLS))
def test_chat_call(fam: str, case: dict) -> None:
    from glmtune.infer import GenerationParams

    kwargs = case["kwargs"]
    params = GenerationParams(max_new_tokens=kwargs.get("max_new_tokens", 16), do_sample=kwargs.get("do_sample", False))
    history = json.loads(json.dumps(case["history_in"]))
    engine = _engine(fam, compat=True)
    reply, history_out = engine.chat(case["query"], history=history, params=params)
    assert history == case["history_in"], "the caller's history must not be mutated"
    if "error" in case:
        # the official chat raised (e.g. ChatGLM2 decoding a special id); ours answers with text
        assert isinstance(reply.text, str)
        return
    assert reply.text == case["response"]
    assert history_out == case["history_out"]
    # default (fixed) mode keeps the last token when generation stopped on length
    fixed, _ = _engine(fam, compat=False).chat(case["query"], history=history, params=params)
    assert fixed.text.startswith(case["response"])
