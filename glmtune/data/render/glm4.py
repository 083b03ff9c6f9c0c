"""GLM-4-9B default renderer: ``[gMASK]<sop>`` + per message ``<|role|>`` + bpe(metadata + "\\n" + content) + eos.

Each message is the text chunk the chat template writes between two special tokens, so the ids equal
``GLM4.render_chat`` of the same messages (special-token spellings inside messages stay text). Tool definitions
become the template's tool system block (rendered once per distinct tool list); a tool call is
``<|assistant|>name\\n{json arguments}`` (``GLM4.format_tool_call``).
"""

from __future__ import annotations

import json
from typing import Any

from glmtune.data.record import Message
from glmtune.data.render.base import Encoder, Piece, Turn
from glmtune.data.render.roles import RoleRenderer
from glmtune.data.validate import loss_flag


def glm4_tools(tools: list[Any]) -> list[Any]:
    """Plain function objects as the ``{"type": "function", "function": {...}}`` entries the template expects."""
    return [t if "type" in t else {"type": "function", "function": t} for t in tools]


class GLM4Renderer(RoleRenderer):
    family_name = "glm4"

    def __init__(self, tokenizer: Any, family: Any) -> None:
        super().__init__(tokenizer, family)
        cmd = tokenizer.get_command
        self.prefix = (cmd("[gMASK]"), cmd("<sop>"))
        self.role_ids = {r: (cmd(f"<|{r}|>"),) for r in ("system", "user", "assistant", "observation")}
        self.end = (tokenizer.eos_token_id,)
        self._tool_blocks: dict[str, tuple[int, ...]] = {}

    def make_encoder(self) -> Encoder:
        encoding = self.tokenizer.encoding

        def encode(texts: list[str], threads: int) -> list[list[int]]:
            if threads > 1 and len(texts) > 64:
                return encoding.encode_ordinary_batch(texts, num_threads=threads)
            return [encoding.encode_ordinary(t) for t in texts]

        return encode

    def tool_block(self, tools: list[Any]) -> tuple[int, ...]:
        """Ids after ``[gMASK]<sop><|system|>`` of the template's tool system message (cached per tool list)."""
        key = json.dumps(tools, sort_keys=True, ensure_ascii=False)
        if key not in self._tool_blocks:
            ids = self.family.render_chat(
                self.tokenizer, [{"role": "system", "content": "", "tools": glm4_tools(tools)}], False
            )
            self._tool_blocks[key] = tuple(ids[3:])
        return self._tool_blocks[key]

    def tools_turns(self, tools: list[Any]) -> list[Turn]:
        return [Turn(self.role_ids["system"], [self.tool_block(tools)], False)]

    def body(self, metadata: str, content: str) -> list[Piece]:
        return [f"{metadata}\n{content}"]

    def message_turns(self, m: Message) -> list[Turn]:
        role = m["role"]
        if role == "assistant" and m.get("tool_calls"):
            return self.tool_call_turns(m)
        out = []
        if role == "system" and m.get("tools"):
            out += self.tools_turns(m["tools"])
            if not m["content"]:
                return out
        out.append(Turn(self.role_ids[role], self.body(m.get("metadata") or "", m["content"]), loss_flag(m)))
        return out
