"""The GLM-4.5 template line (GLM-4.5/4.6/4.7, GLM-4.7-Flash, GLM-5): prompts token-exact against
apply_chat_template with reasoning on and off, XML tool calls round-trip, training samples, detection."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmtune.data.record import Origin, Record
from glmtune.data.render import IGNORE, renderer_for
from glmtune.families import ToolCall, detect_family, get_family
from glmtune.families.glm_xml import parse_xml_calls
from tests.tiny_tokenizers import tiny_tokenizer

VARIANTS = ["glm4-moe", "glm-4.7", "glm4-moe-lite", "glm-moe-dsa"]
tokenizer = tiny_tokenizer


TAGS = (
    "<|",
    "[gMASK]",
    "[MASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<think>",
    "</think>",
    "<tool",
    "</tool",
    "<arg",
    "</arg",
)
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=16)
safe = text.filter(lambda s: not any(t in s for t in TAGS) and "/nothink" not in s)
name = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
# string arguments are written as they are: one that reads as another JSON value cannot come back as a string
word = safe.filter(lambda s: not _reads_as_json(s))
value = st.one_of(word, st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))
arguments = st.dictionaries(name, value, max_size=3)


def _reads_as_json(s: str) -> bool:
    """Whether ``s`` reads as a JSON value other than a string (``null``, ``1``, ``[]``...)."""
    import json

    try:
        return not isinstance(json.loads(s), str)
    except ValueError:
        return False


def hf_call(n: str, a: dict) -> dict:
    return {"type": "function", "function": {"name": n, "arguments": a}}


tool = st.builds(lambda n, d: {"type": "function", "function": {"name": n, "description": d}}, name, safe)
plain = st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "user", "assistant"]), safe)
thought = st.builds(lambda r, c: {"role": "assistant", "content": f"<think>{r}</think>{c}"}, safe, safe)
reasoned = st.builds(lambda r, c: {"role": "assistant", "content": c, "reasoning_content": r}, safe, safe)
calls = st.builds(
    lambda c, cs: {"role": "assistant", "content": c, "tool_calls": [hf_call(n, a) for n, a in cs]},
    safe,
    st.lists(st.tuples(name, arguments), min_size=1, max_size=2),
)
result = st.builds(lambda c: {"role": "tool", "content": c}, safe)
conversation = st.lists(st.one_of(plain, thought, reasoned, calls, result), min_size=1, max_size=7)
switches = st.fixed_dictionaries({}, optional={"enable_thinking": st.booleans(), "clear_thinking": st.booleans()})


@pytest.mark.parametrize("variant", ["glm4-moe", "glm-4.7"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=conversation, tools=st.lists(tool, max_size=2), gen=st.booleans(), kw=switches)
def test_ids_equal_apply_chat_template(variant: str, messages, tools, gen: bool, kw: dict) -> None:
    tok, family = tokenizer(variant), get_family(variant)
    ours = family.render_chat(tok, messages, add_generation_prompt=gen, tools=tools or None, **kw)
    ref = tok.apply_chat_template(messages, tools=tools or None, add_generation_prompt=gen, return_dict=False, **kw)
    assert ours == ref


@pytest.mark.parametrize("variant", VARIANTS)
def test_make_tiny_detection_and_style(variant: str) -> None:
    tok = tokenizer(variant)
    family = get_family(variant)
    assert detect_family({"model_type": family.model_type}) is family  # type: ignore[attr-defined]
    assert family.style_of(tok).name == ("glm45" if variant == "glm4-moe" else "glm47")
    assert tok.decode(family.stop_token_ids(tok)) == "<|endoftext|><|user|><|observation|>"
    prompt = tok.decode(family.render_chat(tok, [{"role": "user", "content": "hi"}], enable_thinking=False))
    assert prompt.endswith("<|assistant|>\n<think></think>" if variant == "glm4-moe" else "<|assistant|></think>")


@settings(max_examples=80, deadline=None)
@given(content=safe, cs=st.lists(st.tuples(name, arguments), max_size=3))
def test_xml_tool_calls_round_trip(content: str, cs: list) -> None:
    tok, family = tokenizer("glm4-moe"), get_family("glm4-moe")
    calls = [ToolCall(n, a) for n, a in cs]
    message = family.reply_message(content, calls)
    text = tok.decode(family.render_chat(tok, [message], add_generation_prompt=False)[3:])
    reasoning, rest = family.split_reasoning(text)
    assert reasoning == ""
    assert family.parse_reply(rest, True) == (content.strip(), calls)


def test_parse_edge_cases() -> None:
    assert parse_xml_calls("a<tool_call>f<arg_key>x</arg_key><arg_value>1</arg_value></tool_call>") == (
        "a",
        [ToolCall("f", {"x": 1})],
    )
    assert parse_xml_calls("text <tool_call>unfinished<arg_key>") == ("text", [])
    v = (
        '<tool_call>f\n<arg_key>q</arg_key>\n<arg_value>{"a": [1]}</arg_value>\n'
        '<arg_key>s</arg_key>\n<arg_value>"x"</arg_value>\n</tool_call>'
    )
    assert parse_xml_calls(v)[1] == [ToolCall("f", {"q": {"a": [1]}, "s": '"x"'})]
    family = get_family("glm-4.7")
    assert family.split_reasoning("step</think>answer", opened=True) == ("step", "answer")
    assert family.split_reasoning("\n<think>step</think>\nanswer") == ("step", "answer")
    assert family.parse_reply("<tool_call>f</tool_call>", False) == ("<tool_call>f</tool_call>", [])


@pytest.mark.parametrize("variant", ["glm4-moe", "glm-4.7"])
def test_training_sample(variant: str) -> None:
    tok, family = tokenizer(variant), get_family(variant)
    tools = [{"type": "function", "function": {"name": "weather"}}]
    messages = [
        {"role": "user", "content": "天气?"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "r1",
            "tool_calls": [{"name": "weather", "arguments": {"city": "北京"}}],
        },
        {"role": "observation", "content": "晴"},
        {"role": "assistant", "content": "晴天", "reasoning_content": "r2"},
        {"role": "user", "content": "谢谢"},
        {"role": "assistant", "content": "不客气", "reasoning_content": "r3", "loss": False},
    ]
    renderer = renderer_for(tok, family)
    renderer.reasoning = "all"
    (_, sample), *_ = renderer.render([Record(messages, tools, Origin("x", 1), "glm4")], None)[0]
    trained = tok.decode([t for t in sample.labels if t != IGNORE])
    assert "r1" in trained and "r2" in trained and "不客气" not in trained and "天气" not in trained
    hf = [
        {"role": "user", "content": "天气?"},
        {**messages[1], "tool_calls": [hf_call("weather", {"city": "北京"})]},
        {"role": "tool", "content": "晴"},
        *[{k: v for k, v in m.items() if k != "loss"} for m in messages[3:]],
    ]
    renderer.reasoning = "last"  # the template's rendering: reasoning after the last user message only
    (_, sample), *_ = renderer.render([Record(messages, tools, Origin("x", 1), "glm4")], None)[0]
    assert sample.input_ids == [*tok.apply_chat_template(hf, tools=tools, return_dict=False), tok.eos_token_id]
    assert "r1" not in tok.decode(sample.input_ids) and "r3" in tok.decode(sample.input_ids)
