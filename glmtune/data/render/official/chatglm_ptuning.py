"""``chatglm-ptuning``: ``ptuning/main.py`` ``preprocess_function_train`` / ``_eval`` of THUDM/ChatGLM-6B (v1).

Kept on purpose: rounds counted from 0 (``[Round 0]\\n问：…\\n答：``) and, in train, an empty history still giving
``[Round 0]`` while eval uses the bare query; without ``history_column`` the bare query; the prompt cut to
source-1 and the answer to target-2 tokens; ``[gMASK] <sop>`` between them and ``<eop>`` at the end; train padded
to source+target with pad id 3; the label at the ``<sop>`` position is ``<sop>``; eval labels from
``tokenizer(text_target=...)`` (``[gMASK] <sop>`` LAST, no eop); eval inputs with the v1 [1, T, T] mask and 2D
position ids. Empty prompts/responses are dropped and an empty eval batch refused, as in ChatGLM2's
(``ptuning.py``, whose record selection this reuses).
"""

from __future__ import annotations

from typing import Any

from glmtune.data.record import RecordError, type_name
from glmtune.data.render.modes import Mode
from glmtune.data.render.official.common import BatchResult, empty_eval_batch, encode_input, per_batch, truncate
from glmtune.data.render.official.ptuning import Pair, PtuningSettings, encoded, masked_pad


def _pieces(tokenizer: Any, tokens: list[Any]) -> list[int]:
    out = []
    for t in tokens:
        if not isinstance(t, str):
            raise RecordError("", f"a list of pieces holds {type_name(t)}")
        out.append(tokenizer._convert_token_to_id(t))
    return out


def _rounds(query: Any, history: Any, field: str) -> str:
    """The official v1 ptuning prompt with history: ``[Round i]\\n问：q\\n答：r\\n`` from 0, then the query."""
    try:
        prompt = ""
        for turn_idx, (old_query, response) in enumerate(history):
            prompt += f"[Round {turn_idx}]\n问：{old_query}\n答：{response}\n"
        return prompt + f"[Round {len(history)}]\n问：{query}\n答："
    except (TypeError, ValueError) as e:
        raise RecordError(field, f"expected a list of [query, response] pairs ({type(e).__name__}: {e})") from None


def _with_prefix(prefix: str, prompt: Any, field: str) -> str:
    if not isinstance(prompt, str):
        raise RecordError(field, f"expected a string, got {type_name(prompt)} (the official prefix + prompt fails)")
    return prefix + prompt


def _prompt(query: Any, history: Any, s: PtuningSettings, rounds_if_empty: bool) -> str:
    """The prefix + prompt: the bare query without ``history_column``; with it, ``[Round i]`` rounds, except that
    eval keeps the bare query for an empty history (train still writes ``[Round 0]``)."""
    field = s.history_column or "history"
    if s.history_column is None:
        prompt = query
    elif rounds_if_empty:
        prompt = _rounds(query, history, field)
    else:
        try:
            empty = len(history) == 0
        except TypeError as e:
            raise RecordError(field, f"expected a list of [query, response] pairs ({e})") from None
        prompt = query if empty else _rounds(query, history, field)
    return _with_prefix(s.source_prefix, prompt, s.prompt_column)


def train(records: list[Any], tokenizer: Any, s: PtuningSettings) -> BatchResult:
    """``preprocess_function_train`` of ChatGLM-6B ptuning."""

    def pair(query: Any, answer: Any, history: Any) -> Pair:
        a_ids = encode_input(tokenizer, _prompt(query, history, s, True), s.prompt_column, _pieces)
        b_ids = encode_input(tokenizer, answer, s.response_column, _pieces)
        cut = len(a_ids) > s.max_source_length - 1 or len(b_ids) > s.max_target_length - 2
        return a_ids[: s.max_source_length - 1], b_ids[: s.max_target_length - 2], cut

    result = BatchResult()
    max_seq_length = s.max_source_length + s.max_target_length
    pad = tokenizer.pad_token_id
    for a_ids, b_ids in encoded(records, s, result, pair):
        input_ids = tokenizer.build_inputs_with_special_tokens(a_ids, b_ids)
        context_length = input_ids.index(tokenizer.bos_token_id)
        labels = [-100] * context_length + input_ids[context_length:]
        pad_len = max_seq_length - len(input_ids)
        input_ids = input_ids + [pad] * pad_len
        labels = masked_pad(labels + [pad] * pad_len, pad, s)
        result.outputs.append({"input_ids": input_ids, "labels": labels})
    result.raise_errors()
    return result


def _encode(tokenizer: Any, text: Any, field: str, max_length: int) -> tuple[list[int], bool]:
    """``tokenizer(text, max_length=..., truncation=True)`` of v1: text ids cut, then ``[gMASK] <sop>`` appended."""
    ids, cut = truncate(encode_input(tokenizer, text, field, _pieces), 2, max_length)
    return tokenizer.build_inputs_with_special_tokens(ids), cut


def eval_(records: list[Any], tokenizer: Any, s: PtuningSettings) -> BatchResult:
    """``preprocess_function_eval`` of ChatGLM-6B ptuning (inputs left-padded with the v1 mask and positions)."""

    def pair(query: Any, answer: Any, history: Any) -> Pair:
        a_ids, cut_a = _encode(tokenizer, _prompt(query, history, s, False), s.prompt_column, s.max_source_length)
        b_ids, cut_b = _encode(tokenizer, answer, s.response_column, s.max_target_length)
        return a_ids, b_ids, cut_a or cut_b

    result = BatchResult()
    pairs = list(encoded(records, s, result, pair))
    result.raise_errors()
    if not pairs:
        raise empty_eval_batch()
    import numpy as np
    from transformers.utils import PaddingStrategy

    longest = max(len(a) for a, _ in pairs)
    for row, target in pairs:
        enc = tokenizer._pad({"input_ids": list(row)}, max_length=longest, padding_strategy=PaddingStrategy.MAX_LENGTH)
        result.outputs.append(
            {
                "input_ids": list(enc["input_ids"]),
                "attention_mask": np.asarray(enc["attention_mask"]).tolist(),
                "position_ids": np.asarray(enc["position_ids"]).tolist(),
                "labels": masked_pad(target, tokenizer.pad_token_id, s),
            }
        )
    return result


MODES = (
    Mode(
        "chatglm-ptuning",
        "ChatGLM-6B ptuning preprocess_function_train / _eval",
        PtuningSettings,
        "chatglm",
        ("train", "eval"),
        process=per_batch(train, eval_),
    ),
)
