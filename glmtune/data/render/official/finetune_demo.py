"""``chatglm3-finetune-demo``: ChatGLM3 finetune_demo ``finetune_hf.py`` — ``process_batch`` (train),
``process_batch_eval`` (eval: one sample per assistant turn) and its ``DataCollatorForSeq2Seq`` subclass.

Kept on purpose: ``loss`` flags ignored; the token after an assistant reply labelled; observation turns trained;
train cut at input+output+1 (eos dropped); eval stopping once the input reaches ``max_input_length``; the
collator padding input_ids/labels on the left and output_ids on the right. Refused as the official code did: any
non-null ``tools`` or a ``tool`` turn, bad roles/contents, an all-empty eval batch in the collator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from glmtune.data.record import RecordError, type_name
from glmtune.data.render.modes import Mode, ModeSettings, setting
from glmtune.data.render.official.chatglm3_demo import _message
from glmtune.data.render.official.common import BatchError, BatchResult, column_dict, per_batch

if TYPE_CHECKING:
    import torch


def _conversation(batch: dict[str, list[Any]], i: int) -> Any:
    tools = batch.get("tools", [None] * len(batch["conversations"]))[i]
    if tools is not None:
        raise RecordError("tools", "tools are not supported by the official finetune_demo (NotImplementedError)")
    conv = batch["conversations"][i]
    if not isinstance(conv, (list, tuple)):
        raise RecordError("conversations", f"expected a list of messages, got {type_name(conv)}")
    return conv


def _checked(message: Any, where: str) -> tuple[str, Any]:
    if not isinstance(message, dict):
        raise RecordError(where, f"expected a message object, got {type_name(message)}")
    if "role" not in message:
        raise RecordError(f"{where}.role", "missing")
    role = message["role"]
    if role == "tool":
        raise RecordError(
            f"{where}.role", "tool turns are not supported by the official finetune_demo (NotImplementedError)"
        )
    if "content" not in message:
        raise RecordError(f"{where}.content", "missing")
    return role, message["content"]


def _batch(records: list[Any]) -> dict[str, list[Any]]:
    batch = column_dict(records)
    if "conversations" not in batch:
        raise BatchError([(i, RecordError("conversations", "missing")) for i in range(len(records))])
    return batch


def process_batch(records: list[Any], tokenizer: Any, max_input_length: int, max_output_length: int) -> BatchResult:
    """``process_batch``: one training sample per record (``input_ids``, ``labels``)."""
    batch = _batch(records)
    result = BatchResult()
    max_length = max_input_length + max_output_length + 1
    prefix = [tokenizer.get_command("[gMASK]"), tokenizer.get_command("sop")]
    for i in range(len(records)):
        try:
            conv = _conversation(batch, i)
            input_ids, masks = list(prefix), [False, False]
            for k, message in enumerate(conv):
                role, content = _checked(message, f"conversations[{k}]")
                ids = _message(tokenizer, role, "", content, f"conversations[{k}]")
                input_ids += ids
                masks += [role not in ("system", "user")] * len(ids)
        except RecordError as e:
            result.errors.append((i, e))
            continue
        input_ids.append(tokenizer.eos_token_id)
        masks = [False, *masks]
        labels = [t if m else -100 for t, m in zip(input_ids, masks, strict=True)]
        if len(input_ids) > max_length:
            result.truncated.add(i)
        result.outputs.append({"input_ids": input_ids[:max_length], "labels": labels[:max_length]})
        result.owners.append(i)
    return result


def process_batch_eval(
    records: list[Any], tokenizer: Any, max_input_length: int, max_output_length: int
) -> BatchResult:
    """``process_batch_eval``: one sample (``input_ids`` prompt, ``output_ids`` reply + eos) per assistant turn."""
    batch = _batch(records)
    result = BatchResult()
    prefix = [tokenizer.get_command("[gMASK]"), tokenizer.get_command("sop")]
    for i in range(len(records)):
        outputs: list[dict[str, list[int]]] = []
        try:
            conv = _conversation(batch, i)
            input_ids = list(prefix)
            stopped_at = None
            for k, message in enumerate(conv):
                if len(input_ids) >= max_input_length:
                    stopped_at = k
                    break
                role, content = _checked(message, f"conversations[{k}]")
                ids = _message(tokenizer, role, "", content, f"conversations[{k}]")
                if role == "assistant":
                    out = [*ids[1:], tokenizer.eos_token_id]
                    if len(out) > max_output_length or len(input_ids) > max_input_length:
                        result.truncated.add(i)
                    outputs.append(
                        {"input_ids": input_ids[:max_input_length] + ids[:1], "output_ids": out[:max_output_length]}
                    )
                input_ids += ids
        except RecordError as e:
            result.errors.append((i, e))
            continue
        if stopped_at is not None:
            lost = sum(1 for m in conv[stopped_at:] if isinstance(m, dict) and m.get("role") == "assistant")
            if lost:
                result.notes.append(
                    (i, f"{lost} assistant turn(s) not evaluated: the input reached max_input_length (official)")
                )
        if not outputs:
            result.notes.append((i, "no eval sample: no assistant turn within max_input_length (official)"))
        result.outputs += outputs
        result.owners += [i] * len(outputs)
    return result


def collate(features: list[dict[str, Any]], tokenizer: Any) -> dict[str, torch.Tensor]:
    """The finetune_demo ``DataCollatorForSeq2Seq(tokenizer, padding='longest')``: output_ids right-padded with
    the pad id, labels left-padded with -100, input_ids left-padded (mask 0, position 0) by the tokenizer."""
    if not features:
        raise RecordError("", "an empty batch: the official collator fails on it (IndexError)")
    pad = tokenizer.pad_token_id
    features = [dict(f) for f in features]
    if "output_ids" in features[0]:
        longest = max(len(f["output_ids"]) for f in features)
        for f in features:
            f["output_ids"] = list(f["output_ids"]) + [pad] * (longest - len(f["output_ids"]))
    if "labels" in features[0]:
        longest = max(len(f["labels"]) for f in features)
        for f in features:
            f["labels"] = [-100] * (longest - len(f["labels"])) + list(f["labels"])
    longest = max(len(f["input_ids"]) for f in features)
    out: dict[str, list[list[int]]] = {k: [] for k in features[0]}
    out["attention_mask"], out["position_ids"] = [], []
    for f in features:
        n = len(f["input_ids"])
        d = longest - n
        for key, value in f.items():
            out[key].append([pad] * d + list(value) if key == "input_ids" else list(value))
        out["attention_mask"].append([0] * d + [1] * n)
        out["position_ids"].append([0] * d + list(range(n)))
    import torch

    return {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}


@dataclass(frozen=True)
class FinetuneDemoSettings(ModeSettings):
    """``--max-input-length`` / ``--max-output-length``; ``data.max_input_length`` / ``data.max_output_length``
    (the finetune_demo YAML's keys; unset: half of ``data.max_length`` each)."""

    max_input_length: int = setting(256, "length", config="max_input_length", half=True)
    max_output_length: int = setting(512, "length", config="max_output_length", half=True)


MODES = (
    Mode(
        "chatglm3-finetune-demo",
        "ChatGLM3 finetune_demo process_batch / process_batch_eval",
        FinetuneDemoSettings,
        "chatglm3",
        ("train", "eval"),
        process=per_batch(
            lambda rs, tok, s: process_batch(rs, tok, s.max_input_length, s.max_output_length),
            lambda rs, tok, s: process_batch_eval(rs, tok, s.max_input_length, s.max_output_length),
        ),
        collate=collate,
    ),
)
