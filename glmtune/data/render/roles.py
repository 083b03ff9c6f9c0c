"""What the role-token renderers (ChatGLM3, GLM-4) share: the plan of a record and tool-call turns.

Each message is ``<|role|>`` + the metadata line + the content; the families differ in how the tool definitions
are prompted (:meth:`tools_turns`) and how a message body is split for encoding (:meth:`body`).
"""

from __future__ import annotations

from typing import Any

from glmtune.data.record import Message, Record
from glmtune.data.render.base import Piece, Plan, Renderer, Turn
from glmtune.data.validate import loss_flag
from glmtune.families import ToolCall


class RoleRenderer(Renderer):
    role_ids: dict[str, tuple[int, ...]]
    prefix: tuple[int, ...]
    end: tuple[int, ...]

    def tools_turns(self, tools: list[Any]) -> list[Turn]:
        """The turns that prompt a record-level tool list."""
        raise NotImplementedError

    def body(self, metadata: str, content: str) -> list[Piece]:
        """The texts of one message after its role token."""
        raise NotImplementedError

    def message_turns(self, m: Message) -> list[Turn]:
        raise NotImplementedError

    def plan(self, record: Record) -> Plan:
        turns = self.tools_turns(record.tools) if record.tools else []
        for m in record.messages:
            turns += self.message_turns(m)
        return Plan(self.prefix, turns, self.end)

    def tool_call_turns(self, m: Message) -> list[Turn]:
        """One assistant turn per call of ``m``, in the family's tool-call format."""
        loss = loss_flag(m)
        out = []
        for call in m["tool_calls"]:
            msg = self.family.format_tool_call(ToolCall(call["name"], call["arguments"]))
            out.append(Turn(self.role_ids["assistant"], self.body(msg["metadata"], msg["content"]), loss))
        return out
