"""ChatGLM-6B's own attention masks and 2D positions, built from ``<sop>``/``[gMASK]``/``[MASK]`` as the official
``get_masks`` / ``get_position_ids`` do (used when a caller passes neither, and by ``generate``)."""

from __future__ import annotations

import torch

from glmtune.model.chatglm_v1.configuration import ChatGLMv1Config


def first_index(row: list[int], token: int, what: str, i: int) -> int:
    """Where ``token`` first occurs in row ``i``; a clear error naming it when the row lacks it."""
    try:
        return row.index(token)
    except ValueError:
        raise ValueError(
            f"row {i} of input_ids has no {what} (id {token}): ChatGLM-6B prompts end with [gMASK] <sop> "
            "(tokenizer.encode adds them); or pass attention_mask and position_ids"
        ) from None


class OfficialInputsMixin:
    """``get_masks`` / ``get_position_ids`` of the official model, for a model whose ``config`` is v1's."""

    config: ChatGLMv1Config

    def _mask_positions(self, rows: list[list[int]]) -> list[int]:
        """Index of [gMASK] in each row, else of [MASK] (the model prefers [gMASK]; the tokenizer [MASK])."""
        gmask, mask = self.config.gmask_token_id, self.config.mask_token_id
        out = []
        for i, row in enumerate(rows):
            if gmask in row:
                out.append(row.index(gmask))
            elif mask in row:
                out.append(row.index(mask))
            else:
                raise ValueError(
                    f"row {i} of input_ids has neither [gMASK] (id {gmask}) nor [MASK] (id {mask}): ChatGLM-6B "
                    "places its positions after the mask token (tokenizer.encode appends [gMASK] <sop>)"
                )
        return out

    def get_masks(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Official ``get_masks``: [B, 1, T, T] bool (True = masked), causal with the context (before <sop>) open."""
        rows = input_ids.tolist()
        seq = input_ids.shape[1]
        context = torch.tensor(
            [first_index(r, self.config.bos_token_id, "<sop>", i) for i, r in enumerate(rows)],
            device=input_ids.device,
        )
        col = torch.arange(seq, device=input_ids.device)
        visible = (col[None, :] <= col[:, None])[None] | (col[None, None, :] < context[:, None, None])
        return (~visible).unsqueeze(1)

    def get_position_ids(self, input_ids: torch.Tensor, mask_positions: list[int] | None = None) -> torch.Tensor:
        """Official ``get_position_ids``: [B, 2, T] (position, block position) or [B, T] without 2D encoding."""
        rows = input_ids.tolist()
        mask_positions = self._mask_positions(rows) if mask_positions is None else mask_positions
        bsz, seq = input_ids.shape
        gmask = self.config.gmask_token_id
        positions = torch.arange(seq, dtype=torch.long, device=input_ids.device).repeat(bsz, 1)
        blocks = torch.zeros(bsz, seq, dtype=torch.long, device=input_ids.device)
        for i, row in enumerate(rows):
            context = first_index(row, self.config.bos_token_id, "<sop>", i)
            if self.config.position_encoding_2d:
                positions[i, context:] = mask_positions[i]
                blocks[i, context:] = torch.arange(1, seq - context + 1, device=input_ids.device)
            elif gmask not in row:
                positions[i, context:] = mask_positions[i]
        return torch.stack((positions, blocks), dim=1) if self.config.position_encoding_2d else positions
