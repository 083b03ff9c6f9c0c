"""What a model family is: the one place each family difference lives.

A family file (``chatglm.py``, ``chatglm2.py``, ``chatglm3.py``, ``glm4.py``) declares its special tokens, stop
tokens, how a conversation becomes ids (the official prompt format, token for token), how tool calls are written
and parsed, where tool definitions go, LoRA target names, which tokenizer and data renderer it uses, how its fast
``tokenizer.json`` is built, and what ``make-tiny`` and ``convert`` write for it. Everything else in glmtune asks
the family instead of branching on a model type; adding a family is a file here plus its tokenizer and renderer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
"""A chat message: ``{"role": system|user|assistant|observation, "content": str, "metadata"?: str, "tools"?: list}``."""


GLM_OFFICIAL_MODULES = {
    "query_key_value": ("q_proj", "k_proj", "v_proj"),
    "dense": ("o_proj",),
    "dense_h_to_4h": ("gate_up_proj",),
    "dense_4h_to_h": ("down_proj",),
}
"""Official ChatGLM2/3/GLM-4 module names -> the native ``GlmForCausalLM`` modules they became."""


@dataclass(frozen=True)
class ToolCall:
    """A structured tool call parsed from (or rendered into) an assistant message."""

    name: str
    arguments: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class Variant:
    """A checkpoint flavour inside a family (e.g. ChatGLM3-6B-32k): what ``make-tiny`` writes differently."""

    name: str
    name_or_path: str
    config_overrides: dict[str, Any] = field(default_factory=dict)
    template: str = ""  # native families: the chat template style of this flavour ("" = the family's default)


@dataclass(frozen=True)
class FastTokenizerSpec:
    """How ``convert --to native`` writes a plain-transformers ``tokenizer.json`` for a family."""

    model: str  # "sentencepiece" (byte-fallback BPE from the pieces) or "tiktoken" (byte-level BPE from the ranks)
    prefix: tuple[str, str]  # the [gMASK] and sop tokens the post-processor puts before every text
    eos: str
    pad: str
    unk: str | None
    chat_template: str | None = None  # a template for the fast tokenizer; None: the exact tokenizer's own


def function_of(tool: dict[str, Any]) -> dict[str, Any]:
    """The inner function definition of an OpenAI-style or ChatGLM3-style tool."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        return tool["function"]
    return tool


def as_openai(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style ``{"type": "function", "function": ...}`` tool of either style."""
    if tool.get("type") == "function":
        return tool
    return {"type": "function", "function": tool}


@dataclass(frozen=True)
class Family:
    """Declarative facts about one ChatGLM generation; subclasses implement the prompt format."""

    name: str
    title: str
    architecture: str  # "glm" (native transformers GlmForCausalLM) or "chatglm-v1" (glmtune's own class)
    tokenizer_file: str
    special_tokens: tuple[str, ...]
    stop_tokens: tuple[str, ...]  # special tokens that end a reply, besides eos
    roles: tuple[str, ...]
    lora_targets: tuple[str, ...]  # native module names used when the user names none
    official_modules: dict[str, tuple[str, ...]]  # official module name -> native module names
    invalid_score_token: int  # official InvalidScoreLogitsProcessor puts 5e4 here on NaN/inf scores
    variants: tuple[Variant, ...] = ()
    supports_tools: bool = False
    openai_tools: bool = False  # tool definitions are prompted in the OpenAI shape ({"type": "function", ...})
    reasoning: bool = False  # replies may open with a <think> block (returned apart as reasoning_content)
    tool_calls_in_text: bool = False  # tool calls are tagged inside the reply text (content streams before them)
    supports_ptuning: bool = True
    continuous_batching: bool = True  # the server merges KV caches step by step (False: model.generate batches)
    # where other layers find the family's parts ("module:Class", imported when needed)
    tokenizer_class: str = ""  # glmtune's exact tokenizer (glmtune/tokenization)
    encoder_class: str = ""  # a lighter class with what the default-mode renderer uses (no transformers); "": none
    renderer_class: str = ""  # the default-mode data renderer (glmtune/data/render)
    fast_tokenizer: FastTokenizerSpec | None = None  # None: no tokenizer.json export (ChatGLM-6B keeps its own)
    checkpoint_template: bool = False  # render the chat_template a checkpoint ships instead of the built-in one
    tools_system_prompt: str = ""  # the system text a tool-using conversation without one gets
    tiny_tokenizer: str = ""  # the file of glmtune/assets/tiny that make-tiny copies as the tokenizer

    # ------------------------------------------------------------ tokenizer
    def tokenizer_options(self, tokenizer_config: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of :attr:`tokenizer_class` taken from a checkpoint's ``tokenizer_config.json``."""
        return {}

    def template_for(self, tokenizer_config: dict[str, Any]) -> str:
        """The chat template a loaded tokenizer carries (the checkpoint's own where :attr:`checkpoint_template`)."""
        shipped = tokenizer_config.get("chat_template") if self.checkpoint_template else None
        return shipped or self.chat_template()

    # ------------------------------------------------------------ checkpoint files
    def official_config_keys(self, config: dict[str, Any]) -> dict[str, Any]:
        """Keys the official ``config.json`` of this family has beyond the shared ChatGLM2/3 set."""
        return {}

    def tiny_config(self, n_tokens: int) -> dict[str, Any]:
        """``make-tiny`` config.json values that differ from the shared tiny config (vocab of ``n_tokens``)."""
        return {}

    def tiny_tokenizer_config(self) -> dict[str, Any]:
        """``tokenizer_config.json`` values that differ from the shared ones ``make-tiny``/``convert`` write."""
        return {}

    # ------------------------------------------------------------ prompt format
    def render_chat(
        self,
        tokenizer: Any,
        messages: list[Message],
        add_generation_prompt: bool = True,
        compat_official_specials: bool = False,
    ) -> list[int]:
        """Token ids of ``messages`` as the official chat code builds them, message text kept as text.

        A special-token spelling written inside a message (``<|assistant|>``, ``[gMASK]``, ChatGLM2's ``sop``
        piece) is never a control token; ``compat_official_specials=True`` reproduces the official code where it
        made them one (GLM-4, ChatGLM-6B, ChatGLM2; ChatGLM3's ``build_chat_input`` never did).
        """
        raise NotImplementedError

    def chat_template(self) -> str:
        """A Jinja ``chat_template`` whose ids equal :meth:`render_chat` (tested)."""
        raise NotImplementedError

    # ------------------------------------------------------------ tool calls
    def format_tool_call(self, call: ToolCall) -> Message:
        """The assistant message that performs ``call`` in this family's format."""
        raise NotImplementedError(f"{self.title} has no tool-call format")

    def parse_reply(self, text: str, tools_available: bool) -> tuple[str, list[ToolCall]]:
        """Split generated text into (content, tool calls); never evaluates model output."""
        return text.strip(), []

    def tool_call_start(self, tokenizer: Any, name: str) -> list[int]:
        """The ids a reply calling tool ``name`` begins with (after ``<|assistant|>``: the name line)."""
        raise NotImplementedError(f"{self.title} has no tool-call format")

    def content_start(self, tokenizer: Any) -> list[int] | None:
        """The ids a plain-content reply begins with, before its text (ChatGLM3 / GLM-4: the empty metadata line);
        None where it is not fixed (a reply may first reason), so output constraints such as JSON mode cannot
        tell where the content begins."""
        return None

    def split_reasoning(self, text: str, opened: bool = False) -> tuple[str, str]:
        """(reasoning, the rest) of generated text; ``opened``: the prompt ended inside a think block."""
        return "", text

    def reply_message(self, content: str, calls: list[ToolCall], reasoning: str = "") -> Message:
        """The assistant message a reply becomes in the history (a tool call in the family's own format)."""
        if calls:
            return self.format_tool_call(calls[0])
        return {"role": "assistant", "metadata": "", "content": content}

    def tool_definitions(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Tool definitions (either style) as this family's system message carries them."""
        return [as_openai(t) if self.openai_tools else function_of(t) for t in tools]

    # ------------------------------------------------------------ generation
    def stop_token_ids(self, tokenizer: Any) -> list[int]:
        ids = [tokenizer.eos_token_id]
        ids += [tokenizer.get_command(t) for t in self.stop_tokens]
        return list(dict.fromkeys(ids))

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)
