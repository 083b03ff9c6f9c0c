"""The one generation layer used by chat, predict, eval, serve and the web UI.

It renders messages with the family's official prompt format and turns generated ids into replies (stop tokens
and strings, reasoning split off, tool calls parsed safely, never ``eval``); it never mutates the caller's
history. The tokens come from the generation core (:mod:`glmtune.infer.decode`), the same one the server's batcher
schedules, so ``glmtune chat`` and the API sample alike.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator
from typing import Any

import torch

from glmtune.families import Message
from glmtune.infer.decode import Decoder
from glmtune.infer.params import GenerationParams, Reply
from glmtune.infer.tools import tools_system_message

__all__ = ["Engine", "GenerationParams", "Reply", "Thought"]


class Thought(str):
    """A reasoning delta from :meth:`Engine.stream` (text of the ``<think>`` block, not of the reply)."""


class Engine:
    """Chat/generation over a loaded model (``glmtune.load`` result, optionally with an adapter)."""

    def __init__(
        self,
        loaded: Any,
        compat_official_chat: bool = False,
        compat_official_specials: bool = False,
        template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.loaded = loaded
        self.template_kwargs = dict(template_kwargs or {})  # e.g. enable_thinking for reasoning families
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.family = loaded.family
        self.compat_official_chat = compat_official_chat
        self.compat_official_specials = compat_official_specials  # prompts: see Family.render_chat
        self.stop_ids = self.family.stop_token_ids(self.tokenizer)
        self.model.eval()
        self._lock = threading.Lock()
        self._core: Decoder | None = None  # the generation core, made on first use

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------------------------------- prompts
    @staticmethod
    def as_messages(history: list[Any] | None) -> list[Message]:
        """Messages from a history of messages or of official ``(query, response)`` pairs (ChatGLM-6B/ChatGLM2)."""
        out: list[Message] = []
        for item in history or []:
            if isinstance(item, dict):
                out.append(copy.deepcopy(item))
            else:
                query, response = item
                out += [{"role": "user", "content": query}, {"role": "assistant", "content": response}]
        return out

    def build_messages(
        self, messages: list[Message], tools: list[dict] | None = None, system: str | None = None
    ) -> list[Message]:
        """A deep copy of ``messages`` with the system prompt and tool definitions in the family's place."""
        out = copy.deepcopy(messages)
        if system is not None and not any(m["role"] == "system" for m in out):
            out.insert(0, {"role": "system", "content": system})
        if tools:
            out = tools_system_message(self.family, out, tools)
        return out

    def prompt_ids(self, messages: list[Message], **template_kwargs: Any) -> list[int]:
        """The prompt ids; ``template_kwargs`` (``enable_thinking``...) reach families with a reasoning format."""
        kwargs = {**self.template_kwargs, **template_kwargs} if self.family.reasoning else {}
        return self.family.render_chat(
            self.tokenizer,
            messages,
            add_generation_prompt=True,
            compat_official_specials=self.compat_official_specials,
            **kwargs,
        )

    def opens_reasoning(self, prompt: list[int]) -> bool:
        """Whether ``prompt`` ends inside an open ``<think>`` block (the reply starts with reasoning)."""
        return self.family.reasoning and self.tokenizer.decode(prompt[-3:]).endswith("<think>")

    # ------------------------------------------------------------------------------------------- generation
    def decoder(self) -> Decoder:
        """This engine's :class:`~glmtune.infer.decode.Decoder` (one at a time runs, under the engine's lock)."""
        if self._core is None:
            self._core = Decoder(self)
        return self._core

    def generate_ids(self, prompts: list[list[int]], params: GenerationParams) -> list[list[int]]:
        """New token ids per prompt (generated together), ending with the stop token where one ended the reply."""
        core = self.decoder()
        rows = [core.row(p, params) for p in prompts]
        with self._lock:
            core.run(rows)
        return [r.new_ids for r in rows]

    def finish(
        self,
        prompt_len: int,
        new_ids: list[int],
        tools_available: bool,
        params: GenerationParams,
        opened: bool = False,
    ) -> Reply:
        """Decode new ids into a :class:`Reply` (stop tokens removed, reasoning split off, tool calls parsed, stop
        strings applied); ``opened``: the prompt ended inside a think block."""
        stopped = bool(new_ids) and new_ids[-1] in self.stop_ids
        content_ids = new_ids[:-1] if (stopped or (self.compat_official_chat and new_ids)) else new_ids
        raw = self.tokenizer.decode(content_ids)
        finish = "stop" if stopped else "length"
        for s in params.stop:
            if s and s in raw:
                raw = raw[: raw.index(s)]
                finish = "stop"
        reasoning, raw = self.family.split_reasoning(raw, opened)
        text, calls = self.family.parse_reply(raw, tools_available)
        if calls:
            finish = "tool_calls"
        return Reply(
            text=text,
            tool_calls=calls,
            finish_reason=finish,
            prompt_tokens=prompt_len,
            completion_tokens=len(new_ids),
            message=self.family.reply_message(text, calls, reasoning),
            reasoning=reasoning,
            note=self.empty_note(content_ids) if not (text or calls or reasoning) and finish == "length" else "",
        )

    def empty_note(self, ids: list[int]) -> str:
        """Why ``ids`` decode to nothing: they are special tokens, typically the prompt's last one repeated (a
        random or barely trained model echoes its input; ChatGLM-6B ties its output layer to its embeddings and
        every prompt ends in ``<sop>``)."""
        if not ids:
            return ""
        top = max(set(ids), key=ids.count)
        name = self.tokenizer.convert_ids_to_tokens([top])[0]
        return (
            f"the reply is empty: the model generated {len(ids)} tokens that decode to nothing "
            f"({ids.count(top)} x {name}); a random or barely trained model repeats its last prompt token: "
            "train longer, with a higher learning rate, or adapt more modules (method.lora_targets)"
        )

    def generate(
        self,
        conversations: list[list[Message]],
        params: GenerationParams | None = None,
        tools: list[dict] | None = None,
    ) -> list[Reply]:
        """One reply per conversation, generated as one left-padded batch."""
        params = params or GenerationParams()
        prompts = [self.prompt_ids(self.build_messages(c, tools)) for c in conversations]
        outputs = self.generate_ids(prompts, params)
        return [
            self.finish(len(p), o, bool(tools), params, self.opens_reasoning(p))
            for p, o in zip(prompts, outputs, strict=False)
        ]

    def chat(
        self,
        query: str,
        history: list[Message] | None = None,
        params: GenerationParams | None = None,
        tools: list[dict] | None = None,
        system: str | None = None,
        role: str = "user",
    ) -> tuple[Reply, list[Message]]:
        """Answer ``query`` after ``history``; returns the reply and a NEW history (the input is not mutated)."""
        past = self.as_messages(history)
        messages = self.build_messages([*past, {"role": role, "content": query}], tools, system)
        params = params or GenerationParams()
        prompt = self.prompt_ids(messages)
        new_ids = self.generate_ids([prompt], params)[0]
        reply = self.finish(len(prompt), new_ids, bool(tools), params, self.opens_reasoning(prompt))
        return reply, [*past, {"role": role, "content": query}, reply.message]

    def stream(
        self, messages: list[Message], params: GenerationParams | None = None, tools: list[dict] | None = None
    ) -> Iterator[str | Reply]:
        """Yield text deltas as they are generated (reasoning deltas as :class:`Thought`), then the final
        :class:`Reply`; the deltas add up to the reply's text (tool calls come only in the reply)."""
        params = params or GenerationParams()
        prompt = self.prompt_ids(self.build_messages(messages, tools))
        core = self.decoder()
        row = core.row(prompt, params, bool(tools))
        events: queue.SimpleQueue = queue.SimpleQueue()

        def run() -> None:
            try:
                with self._lock:
                    core.run([row], deliver=lambda evs: [events.put(ev) for _, ev in evs])
            except BaseException as e:  # surfaced to the caller below
                events.put(("error", e))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            while True:
                kind, value = events.get()
                if kind == "error":
                    raise value
                yield Thought(value) if kind == "reasoning" else value
                if kind == "done":
                    break
        finally:
            row.cancel()
            thread.join()
