"""The GLM-4.5 template line (GLM-4.5/4.6, and GLM-4.7 / GLM-4.7-Flash / GLM-5): reasoning and XML tool calls.

Two official templates. GLM-4.5/4.6 (``glm45``): ``<|user|>\\n…`` (``/nothink`` appended when thinking is off), an
assistant turn ``<|assistant|>\\n<think>…</think>\\ncontent`` (an empty ``<think></think>`` on turns before the last
user message or without reasoning), each call ``\\n<tool_call>name\\n<arg_key>k</arg_key>\\n<arg_value>v</arg_value>\\n
…</tool_call>``, results after one ``<|observation|>`` as ``\\n<tool_response>\\n…\\n</tool_response>``. GLM-4.7
(``glm47``): the same without the newlines, ``</think>`` alone for an empty block, reasoning kept on every turn with
``clear_thinking: false``, and the generation prompt opening ``<think>`` (``</think>`` when thinking is off). String
arguments are written as they are, others as JSON. The Jinja texts are glmtune's own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from glmtune.families.base import Message, ToolCall
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

TOOLS_INTRO = (
    "\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_FORMAT = (
    "</tools>\n\nFor each function call, output the function name and arguments within the following XML format:\n"
)
FORMAT_45 = (
    "<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n<arg_value>{arg-value-1}</arg_value>\n"
    "<arg_key>{arg-key-2}</arg_key>\n<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>"
)
FORMAT_47 = (
    "<tool_call>{function-name}<arg_key>{arg-key-1}</arg_key><arg_value>{arg-value-1}</arg_value>"
    "<arg_key>{arg-key-2}</arg_key><arg_value>{arg-value-2}</arg_value>...</tool_call>"
)


def _jinja(nl: str, fmt: str, user: str, think: str, keep: str, prompt: str) -> str:
    """Our Jinja twin of a GLM-4.5-line template (``nl``: the separator the 4.5 template has and 4.7 drops)."""
    q = lambda s: s.replace("\n", "\\n")  # noqa: E731
    return (
        "{%- macro plain(c) -%}{%- if c is string -%}{{- c -}}"
        "{%- elif c is iterable and c is not mapping -%}{%- for p in c -%}"
        "{%- if p is mapping and p.type == 'text' -%}{{- p.text -}}{%- elif p is string -%}{{- p -}}{%- endif -%}"
        "{%- endfor -%}{%- else -%}{{- c -}}{%- endif -%}{%- endmacro -%}"
        "{{- '[gMASK]<sop>' -}}"
        "{%- if tools -%}{{- '<|system|>" + q(TOOLS_INTRO) + "' -}}"
        "{%- for t in tools -%}{{- (t | tojson(ensure_ascii=False)) ~ '\\n' -}}{%- endfor -%}"
        "{{- '" + q(TOOLS_FORMAT + fmt) + "' -}}{%- endif -%}"
        "{%- set ns = namespace(last=-1) -%}"
        "{%- for m in messages -%}{%- if m.role == 'user' -%}{%- set ns.last = loop.index0 -%}{%- endif -%}"
        "{%- endfor -%}"
        "{%- for m in messages -%}{%- set text = plain(m.content) -%}"
        "{%- if m.role == 'user' -%}" + user + ""
        "{%- elif m.role == 'assistant' -%}"
        "{%- set r = m.reasoning_content if m.reasoning_content is string else '' -%}{%- set c = text -%}"
        "{%- if m.reasoning_content is not string and '</think>' in c -%}"
        "{%- set r = c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') -%}"
        "{%- set c = c.split('</think>')[-1].lstrip('\\n') -%}{%- endif -%}"
        "{{- '<|assistant|>' -}}"
        "{%- if (" + keep + "loop.index0 > ns.last) and r -%}{{- '" + q(nl) + "<think>' ~ r.strip() ~ '</think>' -}}"
        "{%- else -%}{{- '" + think + "' -}}{%- endif -%}"
        "{%- if c.strip() -%}{{- '" + q(nl) + "' ~ c.strip() -}}{%- endif -%}"
        "{%- for tc in m.tool_calls or [] -%}{%- set f = tc.function if tc.function else tc -%}"
        "{{- '" + q(nl) + "<tool_call>' ~ f.name ~ '" + q(nl) + "' -}}"
        "{%- for k, v in f.arguments.items() -%}{{- '<arg_key>' ~ k ~ '</arg_key>" + q(nl) + "<arg_value>' ~ "
        "(v if v is string else v | tojson(ensure_ascii=False)) ~ '</arg_value>" + q(nl) + "' -}}{%- endfor -%}"
        "{{- '</tool_call>' -}}{%- endfor -%}"
        "{%- elif m.role == 'tool' or m.role == 'observation' -%}"
        "{%- if m.content is string -%}"
        "{%- if loop.first or messages[loop.index0 - 1].role not in ['tool', 'observation'] -%}"
        "{{- '<|observation|>' -}}{%- endif -%}"
        "{{- '" + q(nl) + "<tool_response>" + q(nl) + "' ~ m.content ~ '" + q(nl) + "</tool_response>' -}}"
        "{%- else -%}{{- '<|observation|>' -}}{%- for tr in m.content -%}"
        "{{- '"
        + q(nl)
        + "<tool_response>"
        + q(nl)
        + "' ~ (tr.output if tr.output is defined else tr) ~ '"
        + q(nl)
        + "</tool_response>' -}}{%- endfor -%}{%- endif -%}"
        "{%- elif m.role == 'system' -%}{{- '<|system|>" + q(nl) + "' ~ text -}}{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}" + prompt + "{%- endif -%}"
    )


JINJA_45 = _jinja(
    "\n",
    FORMAT_45,
    "{%- set off = enable_thinking is defined and not enable_thinking -%}"
    "{{- '<|user|>\\n' ~ text ~ ('/nothink' if off and not text.endswith('/nothink') else '') -}}",
    "\\n<think></think>",
    "",
    "{{- '<|assistant|>' ~ ('\\n<think></think>' if enable_thinking is defined and not enable_thinking else '') -}}",
)
JINJA_47 = _jinja(
    "",
    FORMAT_47,
    "{{- '<|user|>' ~ text -}}",
    "</think>",
    "(clear_thinking is defined and not clear_thinking) or ",
    "{{- '<|assistant|>' ~ ('</think>' if enable_thinking is defined and not enable_thinking else '<think>') -}}",
)


def arg_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class Glm45Style(Style):
    name = "glm45"
    jinja = JINJA_45
    nl = "\n"
    empty_think = "\n<think></think>"
    tools_format = FORMAT_45

    def user(self, content: str, options: Options) -> list[Seg]:
        body = [lit("\n")]
        if content.endswith("/nothink"):  # the user's own switch is the special token, as the template makes it
            return [*body, txt(content[: -len("/nothink")]), lit("/nothink")]
        return [*body, txt(content), *([lit("/nothink")] if options.enable_thinking is False else [])]

    def assistant(self, m: Message, keep: bool) -> list[Seg]:
        reasoning, content = split_think(m)
        nl = self.nl
        body = [lit(nl + "<think>"), txt(reasoning.strip()), lit("</think>")] if keep and reasoning else []
        body = body or [lit(self.empty_think)]
        if content.strip():
            body += [lit(nl), txt(content.strip())]
        for call in m.get("tool_calls") or []:
            call = call.get("function", call)
            body += [lit(nl + "<tool_call>"), txt(call["name"]), lit(nl)]
            for k, v in (call.get("arguments") or {}).items():
                body += [lit("<arg_key>"), txt(str(k)), lit("</arg_key>" + nl + "<arg_value>")]
                body += [txt(arg_text(v)), lit("</arg_value>" + nl)]
            body.append(lit("</tool_call>"))
        return body

    def blocks(self, messages: list[Message], tools: list[Any] | None, options: Options) -> list[Block]:
        out = []
        if tools:
            body = [lit(TOOLS_INTRO)]
            for tool in tools:
                body += [txt(json.dumps(tool, ensure_ascii=False)), lit("\n")]
            out.append(Block("tools", ["<|system|>"], [*body, lit(TOOLS_FORMAT + self.tools_format)]))
        last = last_user(messages)
        for i, m in enumerate(messages):
            role, content = m["role"], m.get("content") or ""
            if role == "user":
                out.append(Block(role, ["<|user|>"], self.user(content, options), i))
            elif role == "assistant":
                out.append(Block(role, ["<|assistant|>"], self.assistant(m, self.keeps(options, i, last)), i))
            elif role in ("observation", "tool"):
                first = i == 0 or messages[i - 1]["role"] not in ("observation", "tool")
                body = [lit(f"{self.nl}<tool_response>{self.nl}"), txt(content), lit(f"{self.nl}</tool_response>")]
                out.append(Block("observation", ["<|observation|>"] if first else [], body, i))
            elif role == "system" and not holds_tools_only(m):
                out.append(Block(role, ["<|system|>"], [lit(self.nl), txt(content)], i))
        return out

    def generation_prompt(self, options: Options) -> Block:
        return Block("prompt", ["<|assistant|>"], [lit(self.empty_think)] if options.enable_thinking is False else [])


class Glm47Style(Glm45Style):
    name = "glm47"
    jinja = JINJA_47
    clear_thinking = True
    nl = ""
    empty_think = "</think>"
    tools_format = FORMAT_47

    def user(self, content: str, options: Options) -> list[Seg]:
        return [txt(content)]

    def generation_prompt(self, options: Options) -> Block:
        return Block("prompt", ["<|assistant|>"], [lit("</think>" if options.enable_thinking is False else "<think>")])

    def opens_reasoning(self, options: Options) -> bool:
        return options.enable_thinking is not False


_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)
_ARG = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.S)


def arg_value(text: str) -> Any:
    """An argument as the template wrote it: JSON where it is JSON (not a JSON string), else the text."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text
    return text if isinstance(value, str) else value


def parse_xml_calls(text: str) -> tuple[str, list[ToolCall]]:
    """(text outside the calls, the calls) of ``<tool_call>name<arg_key>…</arg_key><arg_value>…</arg_value>…``;
    an unfinished call at the end is dropped from the text (it is not content)."""
    calls = []
    for body in _CALL.findall(text):
        name = body.split("<arg_key>", 1)[0].strip()
        if name:
            calls.append(ToolCall(name, {k.strip(): arg_value(v) for k, v in _ARG.findall(body)}))
    content = _CALL.sub("", text)
    if "<tool_call>" in content:
        content = content.split("<tool_call>", 1)[0]
    return content.strip(), calls


@dataclass(frozen=True)
class GlmXmlFamily(NativeFamily):
    """A family of the GLM-4.5 template line (reasoning, XML tool calls, parallel calls in one turn)."""

    def format_tool_call(self, call: ToolCall) -> Message:
        return {"role": "assistant", "content": "", "tool_calls": [{"name": call.name, "arguments": call.arguments}]}

    def reply_message(self, content: str, calls: list[ToolCall], reasoning: str = "") -> Message:
        msg: Message = {"role": "assistant", "content": content}
        if calls:
            msg["tool_calls"] = [{"name": c.name, "arguments": c.arguments} for c in calls]
        if reasoning:
            msg["reasoning_content"] = reasoning
        return msg

    def tool_call_start(self, tokenizer: Any, name: str) -> list[int]:
        """The ids of ``<tool_call>name`` as they follow the reasoning (with the 4.5 template's newline)."""
        style = self.style_of(tokenizer)
        return token_text(tokenizer).ids([lit(style.nl + "<tool_call>"), txt(name)])  # type: ignore[attr-defined]

    def parse_reply(self, text: str, tools_available: bool) -> tuple[str, list[ToolCall]]:
        if not tools_available:
            return text.strip(), []
        return parse_xml_calls(text)
