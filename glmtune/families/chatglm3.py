"""ChatGLM3-6B (chat, -base, -32k): role tokens, per-message encoding, ``tool_call(...)`` tool calls."""

from __future__ import annotations

import ast
import contextlib
import json
import sys
from dataclasses import dataclass, replace
from typing import Any

from glmtune.families.base import GLM_OFFICIAL_MODULES, Family, Message, ToolCall, Variant
from glmtune.families.chatglm2 import SENTENCEPIECE_FAST

TOOL_CALL_PREFIX = "```python\n"
TOOL_CALL_SUFFIX = "\n```"

# Jinja twin of ChatGLM3Family.render_chat; glmtune's tokenizer encodes its text back to the same ids. The tools'
# newline is an expression: transformers renders templates with trim_blocks, which eats a newline after a block tag.
# Its `tojson` is json.dumps(ensure_ascii=False): with indent=4, the official `json.dumps(tools, indent=4, ...)`.
TOOLS_JSON = "{{ '\\n' + (message['tools'] | tojson(indent=4)) }}"
CHAT_TEMPLATE = (
    "[gMASK]sop"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message.get('metadata') or '' }}\n{{ message['content'] }}"
    "{% if message['role'] == 'system' and 'tools' in message %}" + TOOLS_JSON + "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

# The same prompt for the fast tokenizer of native exports: the space before the content stands for the dummy
# prefix the official code gets by encoding each message separately (SentencePiece then drops/merges it alike).
FAST_CHAT_TEMPLATE = (
    "[gMASK]sop"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message.get('metadata') or '' }}\n {{ message['content'] }}"
    "{% if message['role'] == 'system' and 'tools' in message %}" + TOOLS_JSON + "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

TOOLS_SYSTEM_PROMPT = "Answer the following questions as best as you can. You have access to the following tools:"
"""The official tool-use system prompt (composite_demo) a conversation without a system message gets."""

_INF = "1e" + repr(sys.float_info.max_10_exp + 1)  # how both unparsers write an infinite float


def _literal(value: Any) -> str:
    """The text astunparse 1.6.3 (and ``ast.unparse``) writes for a keyword value: ``repr`` for JSON values,
    infinities as ``1e309``, a NaN as ``nan``."""
    kind = type(value)
    if kind is float:
        return "nan" if value != value else repr(value).replace("inf", _INF)
    if kind in (str, int, bool, list, dict) or value is None:
        return repr(value)
    return ast.unparse(ast.Constant(value))


def format_tool_call_code(name: str, arguments: dict[str, Any]) -> str:
    """``tool_call(a='x', b=1)`` as the official ChatGLM3 data builder writes it (keyword literals).

    The official code built an ``ast.Call`` and wrote it with astunparse 1.6.3; this writes the same text directly
    (``ast.unparse`` agrees except for a top-level NaN, where astunparse writes ``nan``). Tested against ``ast``.
    """
    return f"{name}(" + ", ".join(f"{k}={_literal(v)}" for k, v in arguments.items()) + ")"


def parse_tool_call_code(code: str) -> dict[str, Any]:
    """Keyword arguments of ``tool_call(...)`` code, read with ``ast.literal_eval`` (never ``eval``)."""
    tree = ast.parse(code.strip(), mode="eval")
    if not isinstance(tree.body, ast.Call):
        raise ValueError("not a function call")
    if tree.body.args:
        raise ValueError("positional arguments are not supported")
    return {kw.arg: ast.literal_eval(kw.value) for kw in tree.body.keywords if kw.arg is not None}


@dataclass(frozen=True)
class ChatGLM3Family(Family):
    def tokenizer_options(self, tokenizer_config: dict[str, Any]) -> dict[str, Any]:
        return {"role_tokens": True}

    def render_message(self, tokenizer: Any, message: Message) -> list[int]:
        """``build_single_message`` of one history item as ``build_chat_input`` writes it: a system message that
        has ``tools`` gets ``content + "\\n" + json.dumps(tools, indent=4, ensure_ascii=False)``."""
        content = message.get("content") or ""
        if message["role"] == "system" and "tools" in message:
            try:
                content = content + "\n" + json.dumps(message["tools"], indent=4, ensure_ascii=False)
            except RecursionError:
                raise ValueError("the tool definitions are nested too deeply to render") from None
        return tokenizer.build_single_message(message["role"], message.get("metadata") or "", content)

    def render_chat(
        self,
        tokenizer: Any,
        messages: list[Message],
        add_generation_prompt: bool = True,
        compat_official_specials: bool = False,
    ) -> list[int]:
        """``build_chat_input``: ``[gMASK] sop`` + every message + ``<|assistant|>``; message text is encoded
        straight through SentencePiece, so it is text in the official code too (the switch changes nothing)."""
        ids = tokenizer.get_prefix_tokens()
        for message in messages:
            ids += self.render_message(tokenizer, message)
        if add_generation_prompt:
            ids.append(tokenizer.get_command("<|assistant|>"))
        return ids

    def chat_template(self) -> str:
        return CHAT_TEMPLATE

    def format_tool_call(self, call: ToolCall) -> Message:
        code = format_tool_call_code("tool_call", call.arguments)
        return {"role": "assistant", "metadata": call.name, "content": TOOL_CALL_PREFIX + code + TOOL_CALL_SUFFIX}

    def tool_call_start(self, tokenizer: Any, name: str) -> list[int]:
        return tokenizer.build_single_message("assistant", name, "")[1:]

    def content_start(self, tokenizer: Any) -> list[int]:
        return self.tool_call_start(tokenizer, "")

    def parse_reply(self, text: str, tools_available: bool) -> tuple[str, list[ToolCall]]:
        """The official ``process_response``, with the ``eval`` replaced by a literal parser.

        A reply is ``metadata\\ncontent`` blocks separated by ``<|assistant|>``; a non-empty metadata line is a
        tool name, and with tools available the content is the ``tool_call(...)`` code block.
        """
        content = ""
        calls: list[ToolCall] = []
        for block in text.split("<|assistant|>"):
            metadata, content = block.split("\n", 1) if "\n" in block else ("", block)
            if not metadata.strip():
                content = content.strip().replace("[[训练时间]]", "2023年")
                continue
            if tools_available:
                code = "\n".join(content.split("\n")[1:-1])
                with contextlib.suppress(SyntaxError, ValueError):
                    calls.append(ToolCall(metadata.strip(), parse_tool_call_code(code)))
        return content, calls


CHATGLM3 = ChatGLM3Family(
    name="chatglm3",
    title="ChatGLM3-6B",
    architecture="glm",
    tokenizer_file="tokenizer.model",
    special_tokens=(
        "[MASK]",
        "[gMASK]",
        "[sMASK]",
        "sop",
        "eop",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|observation|>",
    ),
    stop_tokens=("<|user|>", "<|observation|>"),
    roles=("system", "user", "assistant", "observation"),
    lora_targets=("q_proj", "k_proj", "v_proj"),
    official_modules=GLM_OFFICIAL_MODULES,
    invalid_score_token=5,
    supports_tools=True,
    tokenizer_class="glmtune.tokenization.sentencepiece_glm:SentencePieceGLMTokenizer",
    encoder_class="glmtune.tokenization.sp_core:SentencePieceCore",
    renderer_class="glmtune.data.render.chatglm3:ChatGLM3Renderer",
    fast_tokenizer=replace(SENTENCEPIECE_FAST, chat_template=FAST_CHAT_TEMPLATE),
    tools_system_prompt=TOOLS_SYSTEM_PROMPT,
    tiny_tokenizer="chatglm_sp.model",
    variants=(
        Variant("chatglm3", "THUDM/chatglm3-6b", {"seq_length": 8192}),
        Variant("chatglm3-base", "THUDM/chatglm3-6b-base", {"seq_length": 32768}),
        Variant("chatglm3-32k", "THUDM/chatglm3-6b-32k", {"seq_length": 32768, "rope_ratio": 50}),
    ),
)
