"""GLM-4's one switch for the official literal-role-token behaviour: ``compat_official_specials=True``.

Official rule (GLM-4-9B ``tokenizer_config.json`` chat template under transformers 4.40): ``apply_chat_template``
renders the template with jinja's own environment (``trim_blocks``/``lstrip_blocks``, jinja's ``tojson``), then
``tokenizer.encode(text, add_special_tokens=False)``, where transformers splits every registered special token out
of the text (wherever it came from) and tiktoken encodes the rest. The oracle below is written with tiktoken and
jinja directly; glmtune's default keeps message text as text and must differ exactly where messages spell specials.
"""

from __future__ import annotations

import re
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment

from glmtune.families import get_family
from glmtune.model.tiny import asset_path
from glmtune.tokenization import load_tokenizer
from glmtune.tokenization.tiktoken_glm4 import GLM4_PATTERN, read_ranks
from tests.conftest import fixtures_dir

SPECIALS = get_family("glm4").special_tokens
ROLE_TEXT = ["<|user|>", "<|assistant|>", "<|system|>", "<|observation|>", "<|endoftext|>", "[gMASK]", "<sop>"]


@pytest.fixture(scope="module", params=["fixture", "tiny"])
def tok(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    if request.param == "fixture":  # the official chat template shipped in the checkpoint
        return load_tokenizer(fixtures_dir("model", "glm4", "ckpt"), get_family("glm4"))
    directory = tmp_path_factory.mktemp("g4")  # glmtune's own template (what make-tiny writes)
    shutil.copyfile(asset_path(get_family("glm4").tiny_tokenizer), directory / "tokenizer.model")
    return load_tokenizer(directory, get_family("glm4"))


@cache
def encoding(vocab_file: str, with_specials: bool) -> tiktoken.Encoding:
    ranks = read_ranks(vocab_file)
    specials = {t: len(ranks) + i for i, t in enumerate(SPECIALS)} if with_specials else {}
    return tiktoken.Encoding("glm4", pat_str=GLM4_PATTERN, mergeable_ranks=ranks, special_tokens=specials)


def official_ids(tok: Any, messages: list[dict[str, Any]], gen: bool) -> list[int]:
    enc = encoding(tok.vocab_file, True)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(tok.chat_template).render(
        messages=[{"metadata": "", **m} for m in messages], add_generation_prompt=gen
    )
    return enc.encode(text, allowed_special="all")


def text_ids(tok: Any, messages: list[dict[str, Any]], gen: bool) -> list[int]:
    """The same rendering with the specials found only where the template writes them (message text as text)."""
    enc = encoding(tok.vocab_file, False)
    ids = [tok.get_command("[gMASK]"), tok.get_command("<sop>")]
    for m in messages:
        if m["content"]:
            ids += [
                tok.get_command(f"<|{m['role']}|>"),
                *enc.encode_ordinary(f"{m.get('metadata', '')}\n{m['content']}"),
            ]
    return [*ids, tok.get_command("<|assistant|>")] if gen else ids


@pytest.mark.parametrize("gen", [True, False])
def test_switch_reproduces_the_official_ids(tok: Any, gen: bool) -> None:
    family = get_family("glm4")
    messages = [
        {"role": "system", "content": "sys <|user|>fake"},
        {"role": "user", "content": "hi <|assistant|> sure<|observation|>"},
        {"role": "assistant", "content": "ok [gMASK]<sop><|endoftext|>"},
        {"role": "user", "content": "again"},
    ]
    want = official_ids(tok, messages, gen)
    got = tok.apply_chat_template(messages, add_generation_prompt=gen, compat_official_specials=True)
    assert got == want
    assert family.render_chat(tok, messages, gen, compat_official_specials=True) == want
    default = tok.apply_chat_template(messages, add_generation_prompt=gen)
    assert default == family.render_chat(tok, messages, gen) == text_ids(tok, messages, gen)
    assert default != want
    # both render the same text: only the tokenization of the spellings inside messages differs
    assert tok.apply_chat_template(messages, add_generation_prompt=gen, tokenize=False) == tok.apply_chat_template(
        messages, add_generation_prompt=gen, tokenize=False, compat_official_specials=True
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(st.sampled_from([*ROLE_TEXT, "a", " ", "中", "\n", "<", "|"]), max_size=6), min_size=2, max_size=4
    )
)
def test_property_switch_and_default(tok: Any, parts: list[list[str]]) -> None:
    roles = ["user", "assistant"]
    messages = [{"role": roles[k % 2], "content": "".join(p)} for k, p in enumerate(parts)]
    assert tok.apply_chat_template(messages, add_generation_prompt=True, compat_official_specials=True) == (
        official_ids(tok, messages, True)
    )
    assert tok.apply_chat_template(messages, add_generation_prompt=True) == text_ids(tok, messages, True)
    clean = all(not re.search("|".join(map(re.escape, SPECIALS)), m["content"]) for m in messages)
    assert clean == (official_ids(tok, messages, True) == text_ids(tok, messages, True))


def test_default_never_parses_the_tool_definitions(tok: Any, tmp_path: Path) -> None:
    tool = {"type": "function", "function": {"name": "f", "description": "<|user|> x", "parameters": {}}}
    messages = [{"role": "system", "content": "", "tools": [tool]}, {"role": "user", "content": "q"}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True)
    assert ids.count(tok.get_command("<|user|>")) == 1
