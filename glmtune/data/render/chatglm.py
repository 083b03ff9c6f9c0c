"""ChatGLM-6B (v1) default renderer: the ``[Round N]\\n问：…\\n答：`` prompt of the official ``chat()``.

Like ChatGLM2 (``chatglm2.py``) a record trains its last reply, earlier rounds being the prompt's history, but
v1 puts ``[gMASK] <sop>`` AFTER the prompt, counts rounds from 0, sends the bare query when there is no history,
and ends replies with ``<eop>``. Ids: encode(prompt) + ``[gMASK] <sop>`` + encode(reply) + ``<eop>``; labels on
the reply and ``<eop>`` (the official ptuning also labels ``<sop>``: see docs/data.md). Text is encoded as ``encode``
encodes it but with no special-token parsing, so ``<sop>`` written in data stays text.
"""

from __future__ import annotations

from typing import Any

from glmtune.data.record import Record
from glmtune.data.render.base import Encoder, Plan, Turn
from glmtune.data.render.chatglm2 import RoundsRenderer


class ChatGLMv1Renderer(RoundsRenderer):
    family_name = "chatglm"

    def __init__(self, tokenizer: Any, family: Any) -> None:
        super().__init__(tokenizer, family)
        self.answer_head = (tokenizer.gmask_token_id, tokenizer.bos_token_id)
        self.end = (tokenizer.eos_token_id,)

    def make_encoder(self) -> Encoder:
        encode = self.tokenizer.encode_plain

        def run(texts: list[str], threads: int) -> list[list[int]]:
            return [encode(t) if t else [] for t in texts]

        return run

    def plan(self, record: Record) -> Plan:
        prompt, reply = self.split(record)
        turns = [Turn((), [prompt], False, keep_end=True), Turn(self.answer_head, [reply], True)]
        return Plan((), turns, self.end)
