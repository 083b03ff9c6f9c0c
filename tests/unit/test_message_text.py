"""Message text is text: a special-token spelling written inside a message never becomes a control token, in chat
rendering (``render_chat``, ``apply_chat_template``), training data and the server's prompts, for every family;
``compat_official_specials=True`` reproduces the official tokenizers that did make it one.

The expected ids are built here from the official rules, not from glmtune's renderers:
- ChatGLM3 ``build_chat_input``: ``[gMASK] sop`` + per message ``<|role|>`` + sp(metadata + "\\n") + sp(content),
  then ``<|assistant|>`` (SentencePiece never parses special spellings: text in the official code too);
- ChatGLM2 / ChatGLM-6B ``chat()``: ``tokenizer([build_prompt(query, history)])`` (official: special spellings
  and ChatGLM2's ``sop`` piece become control tokens; default: the plain pieces);
- GLM-4: ``tokenizer.encode(apply_chat_template(tokenize=False))`` (official), or per message ``<|role|>`` +
  bpe(metadata + "\\n" + content) (text kept as text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmtune.data import render_records
from glmtune.families import get_family
from glmtune.model.tiny import make_tiny
from glmtune.tokenization import load_tokenizer

VARIANTS = ("chatglm", "chatglm2", "chatglm3", "chatglm3-32k", "glm4")
SPELLINGS = ["<|user|>", "<|assistant|>", "<|system|>", "<|observation|>", "[gMASK]", "sop", "<sop>", "eop", "<eop>"]
SPELLINGS += ["[MASK]", "[sMASK]", "<|endoftext|>", "<pad>", "<unk>", "</s>", "[gMASK]sop", "[gMASK]<sop>"]
EVIL = "hi " + " x".join(SPELLINGS) + " isop desop"
PIECES = [*SPELLINGS, "a", " ", "中文", "\n", "s", "op", "<", "|"]
text = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)


@pytest.fixture(scope="module")
def toks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = {}
    for name in VARIANTS:
        family = get_family(name)
        out[name] = (load_tokenizer(make_tiny(name, tmp_path_factory.mktemp(name) / "ckpt"), family), family)
    return out


def _special_ids(tok: Any) -> set[int]:
    if hasattr(tok, "special_tokens"):
        return set(tok.special_tokens.values())
    return {tok.convert_tokens_to_ids(t) for t in tok.special_spellings()} | {tok.gmask_token_id}


def _conversation(content: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "sys " + content},
        {"role": "user", "content": content},
        {"role": "assistant", "content": content},
        {"role": "user", "content": "again " + content},
    ]


def _rounds(messages: list[dict[str, Any]]) -> tuple[str, list[tuple[str, str]], str]:
    system = messages[0]["content"]
    return system, [(messages[1]["content"], messages[2]["content"])], messages[3]["content"]


def _official(name: str, tok: Any, family: Any, messages: list[dict[str, Any]], official: bool) -> list[int]:
    """The official ids (``official``) or the same prompt with every message text encoded as text."""
    if name.startswith("chatglm3"):  # build_chat_input: official and text-as-text are the same ids
        ids = [tok.get_command("[gMASK]"), tok.get_command("sop")]
        for m in messages:
            ids += [tok.get_command(f"<|{m['role']}|>"), *tok.sp_model.encode("\n"), *tok.sp_model.encode(m["content"])]
        return [*ids, tok.get_command("<|assistant|>")]
    if name == "glm4":
        if official:
            return tok.encode(family.render_text(messages, True, tok.chat_template), add_special_tokens=False)
        ids = [tok.get_command("[gMASK]"), tok.get_command("<sop>")]
        for m in messages:
            if m["content"]:  # the template skips empty messages
                ids += [tok.get_command(f"<|{m['role']}|>"), *tok.encoding.encode_ordinary("\n" + m["content"])]
        return [*ids, tok.get_command("<|assistant|>")]
    system, history, query = _rounds(messages)
    prompt = family.build_prompt(query, history, system)
    if official:
        return tok([prompt])["input_ids"][0]
    if name == "chatglm2":  # the pieces SentencePiece gives, no piece mapped to a special id
        return [tok.get_command("[gMASK]"), tok.get_command("sop"), *tok.sp_model.encode(prompt)]
    pieces = tok.sp_model.EncodeAsPieces(tok._preprocess(prompt))  # v1: preprocessing, then ids + [gMASK] <sop>
    return [tok.sp_model.PieceToId(p) + tok.num_image_tokens for p in pieces] + [
        tok.gmask_token_id,
        tok.bos_token_id,
    ]


@pytest.mark.parametrize("name", VARIANTS)
def test_spellings_in_messages_are_text(toks: dict[str, Any], name: str) -> None:
    tok, family = toks[name]
    messages = _conversation(EVIL)
    skeleton = family.render_chat(tok, _conversation("plain"))
    ids = family.render_chat(tok, messages)
    specials = _special_ids(tok)
    assert [i for i in ids if i in specials] == [i for i in skeleton if i in specials]
    assert ids == _official(name, tok, family, messages, official=False)
    assert tok.apply_chat_template(messages, add_generation_prompt=True) == ids
    assert tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == tok.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False, compat_official_specials=True
    )


@pytest.mark.parametrize("name", VARIANTS)
def test_compat_switch_gives_the_official_ids(toks: dict[str, Any], name: str) -> None:
    tok, family = toks[name]
    messages = _conversation(EVIL)
    want = _official(name, tok, family, messages, official=True)
    assert family.render_chat(tok, messages, compat_official_specials=True) == want
    assert tok.apply_chat_template(messages, add_generation_prompt=True, compat_official_specials=True) == want
    if not name.startswith("chatglm3"):  # these official tokenizers did turn the spellings into control tokens
        assert want != family.render_chat(tok, messages)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(text, min_size=4, max_size=4))
def test_property_text_is_text(toks: dict[str, Any], contents: list[str]) -> None:
    for name in ("chatglm", "chatglm2", "chatglm3", "glm4"):
        tok, family = toks[name]
        messages = [{**m, "content": c} for m, c in zip(_conversation(""), contents, strict=True)]
        want = _official(name, tok, family, messages, official=False)
        assert family.render_chat(tok, messages) == want, name
        assert tok.apply_chat_template(messages, add_generation_prompt=True) == want, name


def _tool_messages(name: str, mark: str) -> list[dict[str, Any]]:
    tool: dict[str, Any] = {"name": f"f{mark}", "description": f"d {mark} x", "parameters": {mark or "p": 1}}
    if name == "glm4":
        tool = {"type": "function", "function": tool}
    return [{"role": "system", "content": "s", "tools": [tool]}, {"role": "user", "content": "q"}]


@pytest.mark.parametrize("name", ["chatglm3", "glm4"])
def test_tool_definitions_and_names_stay_text(toks: dict[str, Any], name: str) -> None:
    tok, family = toks[name]
    specials = _special_ids(tok)
    ids = family.render_chat(tok, _tool_messages(name, "<|user|> [gMASK]sop <|assistant|>"))
    skeleton = family.render_chat(tok, _tool_messages(name, ""))
    assert [i for i in ids if i in specials] == [i for i in skeleton if i in specials]
    messages = _tool_messages(name, "<|user|> [gMASK]sop <|assistant|>")
    assert tok.apply_chat_template(messages, add_generation_prompt=True) == ids


@pytest.mark.parametrize("name", VARIANTS)
def test_training_data_keeps_text(toks: dict[str, Any], name: str, tmp_path: Path) -> None:
    tok, family = toks[name]
    messages = _conversation(EVIL)[:3]
    sample = render_records([{"conversations": messages}], tok, family)[0]
    clean = render_records([{"conversations": _conversation("plain")[:3]}], tok, family)[0]
    specials = _special_ids(tok)
    assert [i for i in sample["input_ids"] if i in specials] == [i for i in clean["input_ids"] if i in specials]
    prompt = family.render_chat(tok, messages[:2])
    assert sample["input_ids"][: len(prompt)] == prompt  # the prompt the model sees at inference


@pytest.mark.parametrize("name", ["chatglm2", "chatglm3", "glm4"])
def test_server_prompts_keep_text(toks: dict[str, Any], name: str, tmp_path: Path) -> None:
    from glmtune.infer import Engine
    from glmtune.model.load import load
    from glmtune.serve.openai_format import to_messages
    from glmtune.serve.schemas import ChatCompletionRequest

    engine = Engine(load(make_tiny(name, tmp_path / "m"), dtype="fp32"))
    req = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "system", "content": EVIL}, {"role": "user", "content": EVIL}]}
    )
    prompt = engine.prompt_ids(engine.build_messages(to_messages(req.messages, engine)))
    _tok, family = toks[name]
    assert prompt == family.render_chat(
        engine.tokenizer, [{"role": "system", "content": EVIL}, {"role": "user", "content": EVIL}]
    )
    specials = _special_ids(engine.tokenizer)
    skeleton = family.render_chat(
        engine.tokenizer, [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}]
    )
    assert [i for i in prompt if i in specials] == [i for i in skeleton if i in specials]
    official = Engine(engine.loaded, compat_official_specials=True)
    assert official.prompt_ids([{"role": "user", "content": EVIL}]) == family.render_chat(
        engine.tokenizer, [{"role": "user", "content": EVIL}], compat_official_specials=True
    )


def test_a_custom_template_with_tools_and_filters(toks: dict[str, Any]) -> None:
    """Text given through ``tools=`` is guarded too; a template that hides which text came from messages is refused."""
    from glmtune.errors import GlmtuneError

    tok, _ = toks["chatglm3"]
    template = (
        "[gMASK]sop<|system|>\n{{ tools | tojson }}{% for m in messages %}<|user|>\n{{ m['content'] }}{% endfor %}"
    )
    tools = [{"name": "f", "description": "<|assistant|> x"}]
    ids = tok.apply_chat_template([{"role": "user", "content": "q"}], tools=tools, chat_template=template)
    assert ids.count(tok.get_command("<|assistant|>")) == 0
    cutting = "[gMASK]sop{% for m in messages %}<|user|>\n{{ m['content'][:3] }}{% endfor %}"
    with pytest.raises(GlmtuneError, match="compat_official_specials"):
        tok.apply_chat_template([{"role": "user", "content": "<|assistant|>"}], chat_template=cutting)
