"""``chatglm3-multiturn`` and ``chatglm3-input-output``: ChatGLM3 finetune_chatmodel_demo ``preprocess_utils.py``
(``MultiTurnDataset`` / ``format_conversation`` and ``InputOutputDataset``), reproduced token for token.

Kept on purpose (they decide the ids): padding to the full length; truncation that cuts the end (eos included);
``loss`` forced off for system/user and read with ``int()`` elsewhere; explicit observation messages trained;
assistant ``metadata`` and tools inside a system message ignored; ``tools: []`` still inserting the tool prompt;
pad id 0 (= unk) in input-output labels becoming -100. Inputs on which the official code raised are refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from glmtune.data.record import RecordError, type_name
from glmtune.data.render.chatglm3 import tool_prompt
from glmtune.data.render.modes import Mode, ModeSettings, setting
from glmtune.data.render.official.common import encode_official, per_record, python_error
from glmtune.families.chatglm3 import TOOL_CALL_PREFIX, TOOL_CALL_SUFFIX, format_tool_call_code

ROLES = ("system", "user", "assistant", "observation")


def _message(tokenizer: Any, role: Any, metadata: str, content: Any, where: str) -> list[int]:
    """The official ``build_single_message`` with its assertions turned into our errors."""
    if not isinstance(role, str) or role not in ROLES:
        raise RecordError(
            f"{where}.role", f"unknown role {role!r} (the official code asserts system/user/assistant/observation/tool)"
        )
    if type(content) is not str:
        raise RecordError(f"{where}.content", f"expected a string, got {type_name(content)}")
    return tokenizer.build_single_message(role, metadata, content)


def _loss(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise python_error(f"{where}.loss", e, "the official int(loss) fails") from None


def format_conversation(item: Any, tokenizer: Any) -> tuple[list[int], list[int]]:
    """Tokens and per-token loss mask of one record, as ``format_conversation``."""
    if not isinstance(item, dict):
        raise RecordError("record", f"expected a JSON object, got {type_name(item)}")
    if "conversations" not in item:
        raise RecordError("conversations", "missing")
    conversations = item["conversations"]
    if not isinstance(conversations, list):
        raise RecordError("conversations", f"expected a list of messages, got {type_name(conversations)}")
    conversations = list(conversations)
    if "tools" in item:
        conversations.insert(0, {"role": "system", "content": tool_prompt(item["tools"]), "_inserted": True})
    tokens = [tokenizer.get_command("[gMASK]"), tokenizer.get_command("sop")]
    masks = [0, 0]
    offset = 1 if "tools" in item else 0
    for idx, conv in enumerate(conversations):
        where = (
            "tools"
            if conv is not None and isinstance(conv, dict) and conv.get("_inserted")
            else (f"conversations[{idx - offset}]")
        )
        if not isinstance(conv, dict):
            raise RecordError(where, f"expected a message object, got {type_name(conv)}")
        loss = conv.get("loss", True)
        if "role" not in conv:
            raise RecordError(f"{where}.role", "missing")
        role = conv["role"]
        try:
            if role in {"system", "user"}:
                loss = False
        except TypeError:
            raise RecordError(f"{where}.role", f"expected a string, got {type_name(role)}") from None
        if role == "tool":
            for key in ("parameters", "name"):
                if key not in conv:
                    raise RecordError(f"{where}.{key}", "missing (the official code raises KeyError)")
            params = conv["parameters"]
            if not isinstance(params, dict):
                raise RecordError(f"{where}.parameters", f"expected an object, got {type_name(params)}")
            code = format_tool_call_code("tool_call", params)
            ids = tokenizer.build_single_message(
                "assistant", f"{conv['name']}", TOOL_CALL_PREFIX + code + TOOL_CALL_SUFFIX
            )
            value = _loss(loss, where)
            tokens += ids
            masks += [value] * len(ids)
            observation = conv.get("observation", None)
            if not isinstance(observation, str):
                observation = json.dumps(observation, ensure_ascii=False)
            ids = tokenizer.build_single_message("observation", "", observation)
            tokens += ids
            masks += [0] * len(ids)
        else:
            if "content" not in conv:
                raise RecordError(f"{where}.content", "missing")
            ids = _message(tokenizer, role, "", conv["content"], where)
            value = _loss(loss, where)
            tokens += ids
            masks += [value] * len(ids)
    tokens.append(tokenizer.eos_token_id)
    masks.append(0)
    return tokens, masks


def multiturn(item: Any, tokenizer: Any, max_seq_length: int) -> tuple[dict[str, list[int]], bool]:
    """``MultiTurnDataset(data, tokenizer, max_seq_length)[i]`` and whether it was truncated."""
    tokens, masks = format_conversation(item, tokenizer)
    shifted = [0, *masks[:-1]]
    labels = [t if m else -100 for t, m in zip(tokens, shifted, strict=True)]
    truncated = len(tokens) > max_seq_length
    tokens, labels = tokens[:max_seq_length], labels[:max_seq_length]
    tokens += [tokenizer.pad_token_id] * (max_seq_length - len(tokens))
    labels += [-100] * (max_seq_length - len(labels))
    return {"input_ids": tokens, "labels": labels}, truncated


def input_output(
    item: Any, tokenizer: Any, max_source_length: int, max_target_length: int
) -> tuple[dict[str, list[int]], bool]:
    """``InputOutputDataset(data, tokenizer, max_source_length, max_target_length)[i]`` and whether it was cut."""
    if not isinstance(item, dict):
        raise RecordError("record", f"expected a JSON object, got {type_name(item)}")
    for key in ("prompt", "response"):
        if key not in item:
            raise RecordError(key, "missing")
    a_ids, cut_a = encode_official(tokenizer, item["prompt"], "prompt", True, max_source_length)
    b_ids, cut_b = encode_official(tokenizer, item["response"], "response", False, max_target_length)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    input_ids = a_ids + b_ids + [eos]
    labels = [pad] * len(a_ids) + b_ids + [eos]
    pad_len = max_source_length + max_target_length + 1 - len(input_ids)
    input_ids = input_ids + [pad] * pad_len
    labels = [(x if x != pad else -100) for x in labels + [pad] * pad_len]
    return {"input_ids": input_ids, "labels": labels}, cut_a or cut_b


@dataclass(frozen=True)
class MultiturnSettings(ModeSettings):
    """``--max-seq-length``; a training config's ``data.max_length``."""

    max_seq_length: int = setting(2048, "length", config="max_length")

    def limit(self) -> int | None:
        return self.max_seq_length


@dataclass(frozen=True)
class InputOutputSettings(ModeSettings):
    """``--max-source-length`` / ``--max-target-length``; ``data.max_source_length`` / ``data.max_target_length``
    (unset: half of ``data.max_length`` each)."""

    max_source_length: int = setting(1024, "length", config="max_source_length", half=True)
    max_target_length: int = setting(128, "length", config="max_target_length", half=True)

    def row_length(self) -> int:
        return self.max_source_length + self.max_target_length


MODES = (
    Mode(
        "chatglm3-multiturn",
        "ChatGLM3 finetune_chatmodel_demo MultiTurnDataset",
        MultiturnSettings,
        "chatglm3",
        process=per_record(lambda r, tok, s: multiturn(r, tok, s.max_seq_length)),
    ),
    Mode(
        "chatglm3-input-output",
        "ChatGLM3 finetune_chatmodel_demo InputOutputDataset",
        InputOutputSettings,
        "chatglm3",
        process=per_record(lambda r, tok, s: input_output(r, tok, s.max_source_length, s.max_target_length)),
    ),
)
