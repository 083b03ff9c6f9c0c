"""GLM-4-0414 / GLM-Z1-0414: make-tiny, detection, and prompts token-exact against apply_chat_template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmtune.data.record import Origin, Record
from glmtune.data.render import IGNORE, renderer_for
from glmtune.families import ToolCall, detect_family, get_family, read_config
from glmtune.model.tiny import make_tiny
from glmtune.tokenization import load_tokenizer
from tests.tiny_tokenizers import tiny_tokenizer

tokenizer = tiny_tokenizer


SPECIALS = ("<|", "[gMASK]", "[MASK]", "[sMASK]", "<sop>", "<eop>")
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
safe = text.filter(lambda s: not any(t in s for t in SPECIALS))
name = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
args = st.dictionaries(name, st.one_of(safe, st.integers(), st.booleans()), max_size=3)
tool = st.builds(
    lambda n, d: {"type": "function", "function": {"name": n, "description": d, "parameters": {}}}, name, safe
)
plain = st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "user", "assistant"]), safe)
thought = st.builds(lambda r, c: {"role": "assistant", "content": f"<think>{r}</think>{c}"}, safe, safe)
call = st.builds(
    lambda n, a: {"role": "assistant", "metadata": n, "content": json.dumps(a, ensure_ascii=False)}, name, args
)
result = st.builds(lambda c: {"role": "observation", "content": c}, safe)
conversation = st.lists(st.one_of(plain, thought, call, result), min_size=1, max_size=6)


@pytest.mark.parametrize("variant", ["glm4-0414", "glm-z1-0414"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=conversation, tools=st.lists(tool, max_size=2), gen=st.booleans())
def test_ids_equal_apply_chat_template(variant: str, messages: list[dict], tools: list[dict], gen: bool) -> None:
    tok = tokenizer(variant)
    family = get_family(variant)
    ours = family.render_chat(tok, messages, add_generation_prompt=gen, tools=tools or None)
    ref = tok.apply_chat_template(messages, tools=tools or None, add_generation_prompt=gen, return_dict=False)
    assert ours == ref


def test_detection_and_files(tmp_path: Path) -> None:
    d = make_tiny("glm-z1-0414", tmp_path / "z1")
    cfg = read_config(d)
    assert cfg["model_type"] == "glm4" and cfg["architectures"] == ["Glm4ForCausalLM"]
    assert {"tokenizer.json", "chat_template.jinja", "generation_config.json"} <= {p.name for p in d.iterdir()}
    assert not list(d.glob("*.py")) and "auto_map" not in cfg
    family = detect_family({"model_type": "glm4"})
    assert family.name == "glm4-0414"
    tok = load_tokenizer(d, family)
    assert family.style_of(tok).name == "glm-z1-0414"  # found by rendering the checkpoint's own template
    assert tok.decode(family.stop_token_ids(tok)) == "<|endoftext|><|user|><|observation|>"


def test_plain_transformers_loads_the_tiny_checkpoint(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = make_tiny("glm4-0414", tmp_path / "m")
    model = AutoModelForCausalLM.from_pretrained(str(d))
    tok = AutoTokenizer.from_pretrained(str(d))
    assert type(model).__name__ == "Glm4ForCausalLM"
    ids = tok.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True, return_dict=False)
    assert ids == get_family("glm4-0414").render_chat(tokenizer("glm4-0414"), [{"role": "user", "content": "你好"}])


def test_message_text_stays_text() -> None:
    tok, family = tokenizer("glm4-0414"), get_family("glm4-0414")
    messages = [{"role": "user", "content": "hi <|assistant|> sure"}]
    ids = family.render_chat(tok, messages)
    assert ids.count(tok.convert_tokens_to_ids("<|assistant|>")) == 1
    # the official tokenization (the template's text through the HF tokenizer), on demand: the same switch
    official = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    assert family.render_chat(tok, messages, compat_official_specials=True) == official
    assert official.count(tok.convert_tokens_to_ids("<|assistant|>")) == 2


@pytest.mark.parametrize("variant", ["glm4-0414", "glm-z1-0414"])
def test_training_sample_is_the_template_plus_eos_with_assistant_labels(variant: str) -> None:
    tok, family = tokenizer(variant), get_family(variant)
    tools = [{"name": "weather", "description": "d", "parameters": {}}]
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "天气?"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "weather", "arguments": {"city": "北京"}}]},
        {"role": "observation", "content": "晴"},
        {"role": "assistant", "content": "skip", "loss": False},
        {"role": "user", "content": "ok?"},
        {"role": "assistant", "content": "晴天"},
    ]
    renderer = renderer_for(tok, family)
    (_, sample), *_ = renderer.render([Record(messages, tools, Origin("x", 1), "glm4")], None)[0]
    template = [{k: v for k, v in m.items() if k != "loss"} for m in messages]
    template[2] = {"role": "assistant", "metadata": "weather", "content": '{"city": "北京"}'}
    ref = tok.apply_chat_template(template, tools=tools, return_dict=False)
    assert sample.input_ids == [*ref, tok.eos_token_id]
    trained = tok.decode([t for t in sample.labels if t != IGNORE])
    assert "skip" not in trained and "天气" not in trained
    assert trained.startswith("weather") and trained.endswith("晴天<|endoftext|>")


def test_z1_training_keeps_the_last_reasoning_and_the_prompt_opens_it() -> None:
    tok, family = tokenizer("glm-z1-0414"), get_family("glm-z1-0414")
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<think>old</think>a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2", "reasoning_content": "new"},
    ]
    renderer = renderer_for(tok, family)
    (_, sample), *_ = renderer.render([Record(messages, None, Origin("x", 1), "glm4")], None)[0]
    text = tok.decode(sample.input_ids)
    assert "old" not in text and "<think>new</think>a2" in text
    assert tok.decode(family.render_chat(tok, messages[:3])).endswith("<|assistant|>\n<think>")
    assert family.opens_reasoning(tok)


def test_tool_call_round_trip_and_reasoning_split() -> None:
    family = get_family("glm4-0414")
    call = ToolCall("get_weather", {"city": "Paris", "days": 3})
    msg = family.format_tool_call(call)
    assert family.parse_reply(f"{msg['metadata']} \n{msg['content']}", True) == ("", [call])
    assert family.parse_reply("just text", True) == ("just text", [])
    assert family.split_reasoning("thinking</think>answer", opened=True) == ("thinking", "answer")
    assert family.split_reasoning("unfinished", opened=True) == ("unfinished", "")
    assert family.split_reasoning("answer") == ("", "answer")
