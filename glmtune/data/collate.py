"""Collators for ``transformers.Trainer``: padded batches, or packed (flattened) rows.

* padded: ``input_ids`` padded with the pad id (right or left), ``labels`` with -100, ``attention_mask``, and
  ``position_ids`` counting the real tokens from 0 (pads 0, as the official tokenizers do);
* packed: every sample of the batch in ONE row (``[1, total]``), ``position_ids`` restarting at 0 for each
  sample and no ``attention_mask``: transformers' masks then keep attention inside each sample (the same
  convention as ``DataCollatorWithFlattening``), so the loss equals the unpadded loss. The first label of every
  sample is -100 (it would otherwise be predicted from the previous sample's last token).

Rows already packed by :func:`glmtune.data.pack.pack_dataset` carry their own ``position_ids`` and are flattened
the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

IGNORE = -100


class PadCollator:
    """Pad a batch of ``{"input_ids", "labels"}`` features to its longest sample (or a multiple of N)."""

    def __init__(self, pad_id: int, padding_side: str = "right", pad_to_multiple_of: int | None = None) -> None:
        if padding_side not in ("right", "left"):
            raise ValueError("padding_side must be 'right' or 'left'")
        self.pad_id = pad_id
        self.padding_side = padding_side
        self.multiple = pad_to_multiple_of

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            longest = -(-longest // self.multiple) * self.multiple
        ids, labels, mask, pos = [], [], [], []
        for f in features:
            x = list(f["input_ids"])
            y = list(f["labels"]) if "labels" in f else list(x)
            n, d = len(x), longest - len(x)
            p = list(f["position_ids"]) if "position_ids" in f else list(range(n))
            if self.padding_side == "right":
                ids.append(x + [self.pad_id] * d)
                labels.append(y + [IGNORE] * d)
                mask.append([1] * n + [0] * d)
                pos.append(p + [0] * d)
            else:
                ids.append([self.pad_id] * d + x)
                labels.append([IGNORE] * d + y)
                mask.append([0] * d + [1] * n)
                pos.append([0] * d + p)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
            "position_ids": torch.tensor(pos, dtype=torch.long),
        }


class FlattenCollator:
    """Concatenate all samples of a batch into one row with per-sample position ids (no attention across)."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        for f in features:
            x = list(f["input_ids"])
            y = list(f["labels"]) if "labels" in f else list(x)
            p = list(f["position_ids"]) if "position_ids" in f else list(range(len(x)))
            y = [IGNORE if q == 0 else v for v, q in zip(y, p, strict=True)]  # first token of every sample
            ids += x
            labels += y
            pos += p
        if self.multiple and len(ids) % self.multiple:
            d = self.multiple - len(ids) % self.multiple
            ids += [self.pad_id] * d
            labels += [IGNORE] * d
            pos += list(range(d))
        return {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([pos], dtype=torch.long),
        }


class ModeCollator:
    """A mode's own collator (``Mode.collate``): the ChatGLM3 finetune_demo ``DataCollatorForSeq2Seq`` (left
    padding; ``output_ids`` right-padded)."""

    def __init__(self, tokenizer: Any, mode: str = "chatglm3-finetune-demo") -> None:
        self.tokenizer = tokenizer
        self.mode = mode

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from glmtune.data.render.modes import get_mode

        collate = get_mode(self.mode).collate
        assert collate is not None
        return collate([{k: v for k, v in f.items() if k != "length"} for f in features], self.tokenizer)


def make_collator(
    tokenizer: Any,
    pack: bool = False,
    padding_side: str = "right",
    pad_to_multiple_of: int | None = None,
    mode: str | None = None,
) -> PadCollator | FlattenCollator | ModeCollator:
    """The collator for training: ``pack=True`` flattens samples into one row (see module docstring);
    ``mode``: a mode with its own collator (``Mode.collate``: chatglm3-finetune-demo's, needed for its eval
    ``output_ids``) gives that one."""
    from glmtune.data.render.modes import get_mode

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if mode and get_mode(mode).collate is not None and not pack:
        return ModeCollator(tokenizer, mode)
    if pack:
        return FlattenCollator(pad_id, pad_to_multiple_of)
    return PadCollator(pad_id, padding_side, pad_to_multiple_of)
