"""Tool definitions: where each family expects them in the conversation.

Users pass OpenAI-style tools (``{"type": "function", "function": {name, description, parameters}}``) or the
ChatGLM3 style (``{name, description, parameters}``); both are accepted for every family.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError
from glmtune.families import Family, Message

CHATGLM3_TOOLS_PROMPT = "Answer the following questions as best as you can. You have access to the following tools:"


def function_of(tool: dict[str, Any]) -> dict[str, Any]:
    """The inner function definition of an OpenAI-style or ChatGLM3-style tool."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        return tool["function"]
    return tool


def as_openai(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") == "function":
        return tool
    return {"type": "function", "function": tool}


def tools_system_message(family: Family, messages: list[Message], tools: list[dict[str, Any]]) -> list[Message]:
    """``messages`` with the tool definitions placed as ``family`` prompts them (a system message's ``tools``)."""
    if not family.supports_tools:
        raise GlmtuneError(f"{family.title} has no tool-calling prompt format")
    out = [dict(m) for m in messages]
    system = next((m for m in out if m["role"] == "system"), None)
    if family.openai_tools:
        defs = [as_openai(t) for t in tools]
        default = ""
    else:
        defs = [function_of(t) for t in tools]
        default = CHATGLM3_TOOLS_PROMPT
    if system is None:
        out.insert(0, {"role": "system", "content": default, "tools": defs})
    else:
        system["tools"] = defs
        if not system.get("content"):
            system["content"] = default
    return out


def read_tools(path: str | Path) -> list[dict[str, Any]]:
    """A JSON list of tool definitions from a file."""
    try:
        tools = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise GlmtuneError(f"{path}: cannot read tools file ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise GlmtuneError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) and function_of(t).get("name") for t in tools):
        raise GlmtuneError(f"{path}: expected a JSON list of tool definitions, each with a name")
    return tools
