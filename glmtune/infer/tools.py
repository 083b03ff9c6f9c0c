"""Tool definitions: where each family expects them in the conversation.

Users pass OpenAI-style tools (``{"type": "function", "function": {name, description, parameters}}``) or the
ChatGLM3 style (``{name, description, parameters}``); both are accepted for every family, which says how it
carries them (:meth:`~glmtune.families.Family.tool_definitions`, ``tools_system_prompt``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError
from glmtune.families import Family, Message
from glmtune.families.base import function_of


def tools_system_message(family: Family, messages: list[Message], tools: list[dict[str, Any]]) -> list[Message]:
    """``messages`` with the tool definitions placed as ``family`` prompts them (a system message's ``tools``)."""
    if not family.supports_tools:
        raise GlmtuneError(f"{family.title} has no tool-calling prompt format")
    out = [dict(m) for m in messages]
    system = next((m for m in out if m["role"] == "system"), None)
    defs = family.tool_definitions(tools)
    default = family.tools_system_prompt
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


__all__ = ["function_of", "read_tools", "tools_system_message"]
