"""GLM-4-0414 (GLM-4-9B/32B-0414, GLM-Z1-9B/32B-0414): native ``Glm4ForCausalLM``, GLM-4 style JSON tool calls.

Two official templates: GLM-4-0414's (system messages first, then the rest; a tool call is an assistant turn
``<|assistant|>name \\n{json arguments}``, its result an ``<|observation|>`` turn) and GLM-Z1's (the same shape with
a tool prompt preamble, every message shown without its ``…</think>`` reasoning, and the generation prompt opening
``<think>``). The Jinja texts below are glmtune's own; ``make-tiny`` writes them as ``chat_template.jinja``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from glmtune.families.base import Family, Message, ToolCall, Variant
from glmtune.families.glm4 import GLM4
from glmtune.families.native import (
    Block,
    NativeFamily,
    Options,
    Seg,
    Style,
    holds_tools_only,
    last_user,
    lit,
    split_think,
    token_text,
    txt,
)

TOOL_NOTE = "在调用上述函数时，请使用 Json 格式表示调用的参数。"
Z1_PREAMBLE = (
    "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱 AI 公司训练的语言模型 GLM-4 模型开发的，"
    "你的任务是针对用户的问题和要求提供适当的答复和支持。"
)

JINJA_0414 = (
    "{{- '[gMASK]<sop>' -}}"
    "{%- if tools -%}{{- '<|system|>\\n# 可用工具\\n' -}}"
    "{%- for t in tools -%}{%- set fn = t.function if t.get('function') else t -%}"
    "{{- '\\n## ' ~ fn.name ~ '\\n\\n' ~ (fn | tojson(indent=4, ensure_ascii=False)) ~ '\\n" + TOOL_NOTE + "' -}}"
    "{%- endfor -%}{%- endif -%}"
    "{%- for m in messages if m.role == 'system' -%}{{- '<|system|>\\n' ~ m.content -}}{%- endfor -%}"
    "{%- for m in messages if m.role != 'system' -%}{%- set meta = m.get('metadata', '') -%}"
    "{%- if m.role == 'user' -%}{{- '<|user|>\\n' ~ m.content -}}"
    "{%- elif m.role == 'assistant' and meta -%}{{- '<|assistant|>' ~ meta ~ ' \\n' ~ m.content -}}"
    "{%- elif m.role == 'assistant' -%}{{- '<|assistant|>\\n' ~ m.content -}}"
    "{%- elif m.role == 'observation' -%}{{- '<|observation|>\\n' ~ m.content -}}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)

JINJA_Z1 = (
    "{{- '[gMASK]<sop>' -}}"
    "{%- if tools -%}{{- '<|system|>\\n" + Z1_PREAMBLE + "\\n\\n# 可用工具' -}}"
    "{%- for t in tools -%}{%- set fn = t.function if t.get('function') else t -%}"
    "{{- '\\n## ' ~ fn.name ~ '\\n\\n' ~ (fn | tojson(indent=4, ensure_ascii=False)) ~ '\\n" + TOOL_NOTE + "' -}}"
    "{%- endfor -%}{%- endif -%}"
    "{%- for m in messages if m.role == 'system' -%}{{- '<|system|>\\n' ~ m.content -}}{%- endfor -%}"
    "{%- for m in messages if m.role != 'system' -%}{%- set meta = m.get('metadata', '') -%}"
    "{%- set shown = m.content.split('</think>') | last | trim -%}"
    "{%- if m.role == 'user' -%}{{- '<|user|>\\n' ~ shown -}}"
    "{%- elif m.role == 'assistant' and meta -%}{{- '<|assistant|>' ~ meta ~ '\\n' ~ shown -}}"
    "{%- elif m.role == 'assistant' -%}{{- '<|assistant|>\\n' ~ shown -}}"
    "{%- elif m.role == 'observation' -%}{{- '<|observation|>\\n' ~ shown -}}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n<think>' -}}{%- endif -%}"
)


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    return tool["function"] if tool.get("function") else tool


def expand_calls(messages: list[Message]) -> list[tuple[int, Message]]:
    """(message index, message) with each tool call as its own ``metadata`` assistant turn (GLM-4 style)."""
    out: list[tuple[int, Message]] = []
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and m.get("tool_calls"):
            if (m.get("content") or "").strip():
                out.append((i, {**m, "tool_calls": None}))
            for call in m["tool_calls"]:
                args = json.dumps(call["arguments"], ensure_ascii=False)
                out.append((i, {"role": "assistant", "metadata": call["name"], "content": args}))
        else:
            out.append((i, m))
    return out


class Glm40414Style(Style):
    """GLM-4-0414's template: message text as it is (no reasoning handling)."""

    name = "glm4-0414"
    jinja = JINJA_0414
    meta_sep = " \n"
    has_reasoning = False

    def tools_head(self) -> list[Seg]:
        return [lit("\n# 可用工具\n")]

    def tool_block(self, tools: list[Any]) -> Block:
        body = self.tools_head()
        for tool in tools:
            fn = _function(tool)
            body += [lit("\n## "), txt(str(fn.get("name"))), lit("\n\n")]
            body += [txt(json.dumps(fn, indent=4, ensure_ascii=False)), lit("\n" + TOOL_NOTE)]
        return Block("tools", ["<|system|>"], body)

    def shown(self, message: Message, index: int, last: int, options: Options) -> list[Seg]:
        return [txt(message.get("content") or "")]

    def blocks(self, messages: list[Message], tools: list[Any] | None, options: Options) -> list[Block]:
        out = [self.tool_block(tools)] if tools else []
        for i, m in enumerate(messages):
            if m["role"] == "system" and not holds_tools_only(m):
                out.append(Block("system", ["<|system|>"], [lit("\n"), txt(m.get("content") or "")], i))
        last = last_user(messages)
        for i, m in expand_calls(messages):
            role, meta = m["role"], m.get("metadata") or ""
            if role == "system" or role not in ("user", "assistant", "observation"):
                continue
            if role == "assistant" and meta:
                body = [txt(meta), lit(self.meta_sep), *self.shown(m, i, last, options)]
            else:
                body = [lit("\n"), *self.shown(m, i, last, options)]
            out.append(Block(role, [f"<|{role}|>"], body, i))
        return out

    def generation_prompt(self, options: Options) -> Block:
        return Block("prompt", ["<|assistant|>"], [])


class GlmZ1Style(Glm40414Style):
    """GLM-Z1-0414's template: messages without their reasoning; the reply opens ``<think>``.

    Training data keeps the reasoning of the turns after the last user message by default (``data.reasoning``),
    which the template itself never shows."""

    name = "glm-z1-0414"
    jinja = JINJA_Z1
    meta_sep = "\n"
    template_reasoning = "none"
    has_reasoning = True

    def tools_head(self) -> list[Seg]:
        return [lit("\n" + Z1_PREAMBLE + "\n\n# 可用工具")]

    def shown(self, message: Message, index: int, last: int, options: Options) -> list[Seg]:
        content = message.get("content") or ""
        visible = content.split("</think>")[-1].strip()
        if message["role"] == "assistant" and self.keeps(options, index, last):
            reasoning, _ = split_think(message)
            if reasoning.strip():
                return [lit("<think>"), txt(reasoning.strip()), lit("</think>"), txt(visible)]
        return [txt(visible)]

    def generation_prompt(self, options: Options) -> Block:
        return Block("prompt", ["<|assistant|>"], [lit("\n<think>")])

    def opens_reasoning(self, options: Options) -> bool:
        return True


@dataclass(frozen=True)
class Glm40414Family(NativeFamily):
    def format_tool_call(self, call: ToolCall) -> Message:
        return {"role": "assistant", "metadata": call.name, "content": json.dumps(call.arguments, ensure_ascii=False)}

    def tool_call_start(self, tokenizer: Any, name: str) -> list[int]:
        return token_text(tokenizer).ids([txt(f"{name}\n")])

    def parse_reply(self, text: str, tools_available: bool) -> tuple[str, list[ToolCall]]:
        """``name\\n{json arguments}`` is a tool call (as GLM-4-9B); anything else is plain content."""
        return GLM4.parse_reply(text.replace(" \n", "\n", 1), tools_available)


GLM4_SPECIALS = GLM4.special_tokens

GLM4_0414: Family = Glm40414Family(
    name="glm4-0414",
    title="GLM-4-0414",
    architecture="native",
    tokenizer_file="tokenizer.json",
    special_tokens=GLM4_SPECIALS,
    stop_tokens=("<|user|>", "<|observation|>"),
    roles=("system", "user", "assistant", "observation"),
    lora_targets=("q_proj", "k_proj", "v_proj"),
    official_modules={},
    invalid_score_token=198,
    supports_tools=True,
    openai_tools=True,
    reasoning=True,
    supports_ptuning=False,
    variants=(
        Variant("glm4-0414", "THUDM/GLM-4-9B-0414"),
        Variant("glm-z1-0414", "THUDM/GLM-Z1-9B-0414", template="glm-z1-0414"),
    ),
    model_type="glm4",
    model_class="Glm4ForCausalLM",
    styles=(Glm40414Style(), GlmZ1Style()),
    hf_specials=GLM4_SPECIALS,
    lora_presets={
        "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
        "mlp": ("gate_up_proj", "down_proj"),
    },
    tiny={
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "intermediate_size": 128,
        "max_position_embeddings": 2048,
        "partial_rotary_factor": 0.5,
        "attention_bias": True,
        "rms_norm_eps": 1e-05,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    },
)
