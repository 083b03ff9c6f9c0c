"""ChatGLM3-6B default renderer: ``[gMASK] sop`` + per message ``<|role|>`` + sp(metadata + "\\n") + sp(content) + eos.

Token for token what ``build_chat_input`` / ``build_single_message`` produce, so training matches inference.
Tool definitions become the official tool system prompt; a tool call is an assistant message whose metadata is
the tool name and whose content is the ``tool_call(...)`` code block (``ChatGLM3.format_tool_call``); parallel
calls are consecutive assistant messages.
"""

from __future__ import annotations

import json
from typing import Any

from glmtune.data.record import Message
from glmtune.data.render.base import Encoder, Piece, Turn, sentencepiece_encoder
from glmtune.data.render.roles import RoleRenderer
from glmtune.data.validate import loss_flag

TOOL_PROMPT = "Answer the following questions as best as you can. You have access to the following tools:\n"


def tool_prompt(tools: list[Any]) -> str:
    """The system prompt listing ``tools`` (the official finetune and chat demos' text)."""
    return TOOL_PROMPT + json.dumps(tools, indent=4, ensure_ascii=False)


def chatglm3_tools(tools: list[Any]) -> list[Any]:
    """OpenAI/GLM-4 style ``{"type": "function", "function": {...}}`` entries as ChatGLM3 function objects."""
    return [t["function"] if t.get("type") == "function" and isinstance(t.get("function"), dict) else t for t in tools]


class ChatGLM3Renderer(RoleRenderer):
    family_name = "chatglm3"

    def make_encoder(self) -> Encoder:
        return sentencepiece_encoder(self.tokenizer, official_encode=False)

    def __init__(self, tokenizer: Any, family: Any) -> None:
        super().__init__(tokenizer, family)
        cmd = tokenizer.get_command
        self.prefix = (cmd("[gMASK]"), cmd("sop"))
        self.role_ids = {r: (cmd(f"<|{r}|>"),) for r in ("system", "user", "assistant", "observation")}
        self.end = (tokenizer.eos_token_id,)
        self._prompts: dict[str, str] = {}

    def tools_text(self, tools: list[Any]) -> str:
        """The tool system prompt, built once per distinct tool list (``indent`` JSON is slow to write)."""
        key = json.dumps(tools, ensure_ascii=False)
        text = self._prompts.get(key)
        if text is None:
            text = self._prompts[key] = tool_prompt(chatglm3_tools(tools))
        return text

    def tools_turns(self, tools: list[Any]) -> list[Turn]:
        return [Turn(self.role_ids["system"], ["\n", self.tools_text(tools)], False)]

    def body(self, metadata: str, content: str) -> list[Piece]:
        return [f"{metadata}\n", content]

    def message_turns(self, m: Message) -> list[Turn]:
        role = m["role"]
        if role == "assistant" and m.get("tool_calls"):
            return self.tool_call_turns(m)
        content = m["content"]
        if role == "system" and m.get("tools") is not None:
            content = content + "\n" + json.dumps(m["tools"], indent=4, ensure_ascii=False)
        return [Turn(self.role_ids[role], self.body(m.get("metadata") or "", content), loss_flag(m))]
