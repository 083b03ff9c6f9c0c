"""Default renderers: ids equal each family's chat rendering (training = inference), labels follow the official
rule, tool calls use the family format, truncation keeps eos, and the official modes' quirks are fixed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from glmtune.data import render_records
from glmtune.data.render import renderer_for
from glmtune.data.render.base import assemble, sentencepiece_encoder
from glmtune.data.render.official.chatglm3_demo import multiturn
from glmtune.families import get_family
from glmtune.tokenization import load_tokenizer
from tests.conftest import fixtures_dir

PREP = fixtures_dir("prep")
TOOL = {"name": "get_weather", "description": "weather of a city", "parameters": {"type": "object"}}


@pytest.fixture(scope="module")
def tok3() -> Any:
    return load_tokenizer(PREP / "tokenizers" / "chatglm3", get_family("chatglm3"))


@pytest.fixture(scope="module")
def tok2() -> Any:
    return load_tokenizer(PREP / "tokenizers" / "chatglm2", get_family("chatglm2"))


@pytest.fixture(scope="module")
def tok4() -> Any:
    return load_tokenizer(fixtures_dir("model", "glm4", "ckpt"), get_family("glm4"))


@pytest.fixture(scope="module")
def tok1() -> Any:
    return load_tokenizer(PREP / "tokenizers" / "chatglm", get_family("chatglm"))


def _one(record: dict[str, Any], tok: Any, family: str, **kw: Any) -> dict[str, list[int]]:
    return render_records([record], tok, family, **kw)[0]


def _loss_ids(sample: dict[str, list[int]]) -> list[int]:
    return [t for t in sample["labels"] if t != -100]


CONV = {
    "conversations": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "1+1=?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "<|user|> and 2+2?"},
        {"role": "assistant", "content": "4"},
    ]
}


def test_chatglm3_ids_equal_build_chat_input_and_labels_follow_official(tok3: Any) -> None:
    fam = get_family("chatglm3")
    out = _one(CONV, tok3, "chatglm3")
    msgs = CONV["conversations"]
    assert out["input_ids"] == [*fam.render_chat(tok3, msgs, add_generation_prompt=False), tok3.eos_token_id]
    expected, _ = multiturn(CONV, tok3, len(out["input_ids"]))
    assert out == expected  # untruncated, no tools/metadata: the official MultiTurnDataset exactly
    assert tok3.get_command("<|user|>") in _loss_ids(out)  # the role token after a reply is the stop label
    assert out["labels"][-1] == tok3.eos_token_id


def test_chatglm3_default_fixes_official_quirks(tok3: Any) -> None:
    meta = {
        "conversations": [
            {"role": "user", "content": "w?"},
            {"role": "assistant", "content": "x", "metadata": "get_weather"},
        ]
    }
    out = _one(meta, tok3, "chatglm3")
    assert out["input_ids"][8:] == [*tok3.build_single_message("assistant", "get_weather", "x")[1:], 2]
    sys_tools = {"conversations": [{"role": "system", "content": "s", "tools": [TOOL]}, *CONV["conversations"][1:]]}
    fam = get_family("chatglm3")
    out = _one(sys_tools, tok3, "chatglm3")
    assert out["input_ids"][:-1] == fam.render_chat(tok3, sys_tools["conversations"], add_generation_prompt=False)
    empty_tools = _one({**CONV, "tools": []}, tok3, "chatglm3")
    assert empty_tools == _one(CONV, tok3, "chatglm3")  # official: "tools": [] inserts an empty tool prompt


def test_chatglm3_tool_turns_and_parallel_calls(tok3: Any) -> None:
    rec = {
        "tools": [TOOL],
        "conversations": [
            {"role": "user", "content": "weather in A?"},
            {"role": "tool", "name": "get_weather", "parameters": {"city": "A"}, "observation": {"t": 1}},
            {"role": "assistant", "content": "1 degree"},
        ],
    }
    out = _one(rec, tok3, "chatglm3")
    official, _ = multiturn(rec, tok3, len(out["input_ids"]))
    assert out == official
    sharegpt = {
        "conversations": [
            {"from": "human", "value": "A and B?"},
            {
                "from": "function_call",
                "value": json.dumps([{"name": "w", "arguments": {"c": "A"}}, {"name": "w", "arguments": {"c": "B"}}]),
            },
            {"from": "observation", "value": "[1, 2]"},
            {"from": "gpt", "value": "1 and 2"},
        ]
    }
    ids = _one(sharegpt, tok3, "chatglm3")["input_ids"]
    call = tok3.build_single_message("assistant", "w", "```python\ntool_call(c='A')\n```")
    assert ids[ids.index(tok3.get_command("<|assistant|>")) :][: len(call)] == call
    assert ids.count(tok3.get_command("<|assistant|>")) == 3  # two calls + the reply


def test_loss_flags(tok3: Any) -> None:
    rec = {
        "conversations": [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1", "loss": False},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2"},
        ]
    }
    out = _one(rec, tok3, "chatglm3")
    assert _loss_ids(out) == tok3.sp_model.encode("\n") + tok3.sp_model.encode("a2") + [tok3.eos_token_id]


def test_truncation_keeps_whole_messages_and_eos(tok3: Any) -> None:
    long = {
        "conversations": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "short"},
            {"role": "user", "content": "q " * 50},
            {"role": "assistant", "content": "long " * 50},
        ]
    }
    full = _one(long, tok3, "chatglm3")
    cut = _one(long, tok3, "chatglm3", max_length=40)
    first = _one({"conversations": long["conversations"][:2]}, tok3, "chatglm3")
    assert len(full["input_ids"]) > 40 and cut == first and cut["input_ids"][-1] == tok3.eos_token_id
    one = {"conversations": [{"role": "user", "content": "q " * 100}, {"role": "assistant", "content": "a " * 100}]}
    out = _one(one, tok3, "chatglm3", max_length=50)
    assert len(out["input_ids"]) == 50 and out["input_ids"][-1] == out["labels"][-1] == tok3.eos_token_id
    assert tok3.get_command("<|assistant|>") in out["input_ids"] and len(_loss_ids(out)) > 10


def test_truncation_is_counted(tok3: Any) -> None:
    from glmtune.data import Report

    report = Report()
    render_records([CONV, CONV], tok3, "chatglm3", max_length=10, report=report)
    assert report.truncated == 2


def test_fast_path_equals_reference_assembly(tok3: Any) -> None:
    fam = get_family("chatglm3")
    renderer = renderer_for(tok3, fam)
    from glmtune.data.pipeline import normalize_records
    from glmtune.data.record import Origin, RawRecord

    docs = json.loads((PREP / "chatglm3-multiturn.json").read_text())
    raws = [RawRecord(c["record"], Origin("f", i)) for i, c in enumerate(docs["cases"])]
    records, _ = normalize_records(raws)
    fast = dict(renderer.render(records, None)[0])
    for i, rec in enumerate(records):
        plan = renderer.plan(rec)
        texts = [p for t in plan.turns for p in t.body if isinstance(p, str)]
        lookup = dict(zip(texts, renderer.encode_texts(texts), strict=True))
        ref = assemble(plan, lookup, None)
        assert (fast[i].input_ids, fast[i].labels) == (ref.input_ids, ref.labels)


def test_chatglm2_rounds_prompt_and_sop_quirk_encoder(tok2: Any) -> None:
    fam = get_family("chatglm2")
    rec = {"prompt": "q2 sop", "response": "a2 sop", "history": [["q1", "a1"]]}
    out = _one(rec, tok2, "chatglm2")
    prompt = fam.build_prompt("q2 sop", [("q1", "a1")])
    answer = tok2.encode("a2 sop", add_special_tokens=False)
    assert out["input_ids"] == tok2.encode(prompt) + answer + [tok2.eos_token_id]
    assert _loss_ids(out) == [*answer, tok2.eos_token_id]
    enc = sentencepiece_encoder(tok2, official_encode=True)
    texts = ["sop", " sop sop", "[gMASK] <sop> [MASK]", "<eop> </s>", "hello", ""]
    assert [list(map(int, ids)) for ids in enc(texts, 1)] == [tok2.encode(t, add_special_tokens=False) for t in texts]


def test_chatglm2_refuses_tool_data(tok2: Any) -> None:
    from glmtune.data import DataErrors

    rec = {
        "conversations": [
            {"role": "user", "content": "q"},
            {"role": "tool", "name": "f", "parameters": {}, "observation": "x"},
            {"role": "assistant", "content": "a"},
        ]
    }
    with pytest.raises(DataErrors, match="ChatGLM2-6B has no tool calls"):
        _one(rec, tok2, "chatglm2")


def test_chatglm_v1_prompt_matches_chat(tok1: Any) -> None:
    fam = get_family("chatglm")
    rec = {"prompt": "你好", "response": "你好！", "history": [["q", "a"]]}
    out = _one(rec, tok1, "chatglm")
    msgs = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "你好"},
    ]
    prompt_ids = fam.render_chat(tok1, msgs)
    assert out["input_ids"][: len(prompt_ids)] == prompt_ids
    assert out["input_ids"][-1] == tok1.eos_token_id and _loss_ids(out)[-1] == tok1.eos_token_id
    bare = _one({"prompt": "你好", "response": "x"}, tok1, "chatglm")
    assert bare["input_ids"][:5] == [*tok1.encode_text("你好"), tok1.gmask_token_id, tok1.bos_token_id]


def test_glm4_ids_equal_the_chat_template(tok4: Any) -> None:
    fam = get_family("glm4")
    msgs = [
        {"role": "system", "content": "", "tools": [{"type": "function", "function": TOOL}]},
        {"role": "user", "content": "weather <|assistant|> in A?"},
        {"role": "assistant", "metadata": "get_weather", "content": '{"city": "A"}'},
        {"role": "observation", "content": '{"t": 1}'},
        {"role": "assistant", "content": "1 degree"},
    ]
    out = _one({"messages": msgs}, tok4, "glm4")
    assert out["input_ids"] == [*fam.render_chat(tok4, msgs, add_generation_prompt=False), tok4.eos_token_id]
    assert tok4.get_command("<|observation|>") in _loss_ids(out)
    top = _one({"tools": [TOOL], "messages": msgs[1:]}, tok4, "glm4")
    assert top == out


def test_official_modes_through_the_pipeline_report_errors_notes_and_truncation(tok3: Any, tok2: Any) -> None:
    from glmtune.data import DataErrors, Report
    from glmtune.data.record import Origin, RawRecord

    good = {"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a " * 30}]}
    tools = {**good, "tools": []}
    raws = [RawRecord(r, Origin("d.jsonl", i)) for i, r in enumerate([good, tools, good], 1)]
    with pytest.raises(DataErrors, match=r"d\.jsonl:2: tools: tools are not supported by the official finetune_demo"):
        render_records(raws, tok3, "chatglm3", "chatglm3-finetune-demo")
    report = Report()
    out = render_records(
        raws,
        tok3,
        "chatglm3",
        "chatglm3-finetune-demo",
        skip_invalid=True,
        report=report,
        max_input_length=8,
        max_output_length=8,
    )
    assert len(out) == 2 and len(report.invalid) == 1 and report.truncated == 2
    assert all(len(o["input_ids"]) == 17 for o in out)
    adgen = [RawRecord({"content": "c", "summary": s}, Origin("a.json", i)) for i, s in enumerate(["s", ""], 1)]
    report = Report()
    out = render_records(adgen, tok2, "chatglm2", "chatglm2-ptuning", report=report)
    assert len(out) == 1 and [str(n) for n in report.notes] == [
        "a.json:2: dropped: summary is empty (the official code skips it silently)"
    ]
    with pytest.raises(Exception, match="needs a ChatGLM2-6B tokenizer"):
        render_records(adgen, tok3, "chatglm3", "chatglm2-ptuning")
    with pytest.raises(Exception, match="has no setting max_length"):
        render_records(adgen, tok2, "chatglm2", "chatglm2-ptuning", max_length=5)


def test_sentencepiece_encoder_on_a_library_without_array_output(tok2: Any) -> None:
    """sentencepiece < 0.2.3 has no ``out_type="numpy"``: the encoder falls back to lists, with the same ids."""
    from types import SimpleNamespace

    class OldSentencePiece:
        def __init__(self, sp: Any) -> None:
            self._sp = sp

        def __getattr__(self, name: str) -> Any:
            return getattr(self._sp, name)

        def encode(self, texts: Any, out_type: Any = int, **kw: Any) -> Any:
            if out_type == "numpy":
                raise ValueError("unknown return_type=numpy")
            return self._sp.encode(texts, out_type=out_type, **kw)

    texts = ["sop", " sop sop", "[gMASK] <sop>", "hello", "", "中文"]
    old = SimpleNamespace(sp_model=OldSentencePiece(tok2.sp_model), special_tokens=tok2.special_tokens)
    for official in (True, False):
        lists = sentencepiece_encoder(old, official_encode=official)(texts, 1)
        arrays = sentencepiece_encoder(tok2, official_encode=official)(texts, 1)
        assert all(type(x) is list for x in lists)
        assert lists == [list(map(int, a)) for a in arrays]
