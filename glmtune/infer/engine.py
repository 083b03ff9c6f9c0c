"""The one generation layer used by chat, predict, eval, serve and the web UI.

It renders messages with the family's official prompt format, generates left-padded batches with the family's
stop ids, streams text, parses tool calls safely (never ``eval``) and never mutates the caller's history.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, TextIteratorStreamer

from glmtune.families import Message, ToolCall
from glmtune.infer.tools import tools_system_message


@dataclass
class GenerationParams:
    """Sampling parameters; ``temperature == 0`` or ``do_sample=False`` means greedy."""

    max_new_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.8
    top_k: int = 0
    do_sample: bool = True
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    def generate_kwargs(self) -> dict[str, Any]:
        sample = self.do_sample and self.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": sample}
        if sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
            if self.top_k:
                kwargs["top_k"] = self.top_k
        if self.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = self.repetition_penalty
        return kwargs


@dataclass
class Reply:
    """One generated assistant turn."""

    text: str
    tool_calls: list[ToolCall]
    finish_reason: str  # "stop" | "length" | "tool_calls"
    prompt_tokens: int
    completion_tokens: int
    message: Message  # the assistant message to append to the history
    note: str = ""  # why a reply is empty although tokens were generated (see Engine.finish)
    reasoning: str = ""  # the reply's <think> block (families with a reasoning format), apart from ``text``


class InvalidScoreLogitsProcessor(LogitsProcessor):
    """The official guard: NaN/inf scores become a certain pick of one harmless token."""

    def __init__(self, token_id: int) -> None:
        self.token_id = token_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if torch.isnan(scores).any() or torch.isinf(scores).any():
            scores.zero_()
            scores[..., self.token_id] = 5e4
        return scores


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
    def _inputs(self, prompts: list[list[int]]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad({"input_ids": prompts}, padding="longest", return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}

    def _gen_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs = params.generate_kwargs()
        kwargs.update(
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            logits_processor=LogitsProcessorList([InvalidScoreLogitsProcessor(self.family.invalid_score_token)]),
        )
        return kwargs

    def generate_ids(self, prompts: list[list[int]], params: GenerationParams) -> list[list[int]]:
        """New token ids per prompt (left-padded batch), cut after the first stop token."""
        inputs = self._inputs(prompts)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with self._lock, torch.no_grad():
            out = self.model.generate(**inputs, **self._gen_kwargs(params))
        width = inputs["input_ids"].shape[1]
        return [self._cut(row) for row in out[:, width:].tolist()]

    def _cut(self, row: list[int]) -> list[int]:
        for i, t in enumerate(row):
            if t in self.stop_ids:
                return row[: i + 1]
        return row

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
        """Yield text deltas as they are generated, then the final :class:`Reply`."""
        params = params or GenerationParams()
        prompt = self.prompt_ids(self.build_messages(messages, tools))
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, timeout=600)
        inputs = self._inputs([prompt])
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                with self._lock, torch.no_grad():
                    result["out"] = self.model.generate(**inputs, **self._gen_kwargs(params), streamer=streamer)
            except BaseException as e:  # surfaced to the caller below
                result["error"] = e
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        stop_texts = [self.tokenizer.decode([i]) for i in self.stop_ids]
        for piece in streamer:
            for s in stop_texts:
                if s and piece.endswith(s):
                    piece = piece[: -len(s)]
            if piece:
                yield piece
        thread.join()
        if "error" in result:
            raise result["error"]
        new_ids = self._cut(result["out"][0, inputs["input_ids"].shape[1] :].tolist())
        yield self.finish(len(prompt), new_ids, bool(tools), params, self.opens_reasoning(prompt))
