"""Write weights as the original repos do: sharded safetensors with an index, or ``pytorch_model.bin``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file


def write_weights(
    directory: Path,
    weights: dict[str, torch.Tensor],
    fmt: str = "safetensors",
    shards: int | None = 2,
    max_shard_bytes: int | None = None,
) -> None:
    """Save ``weights`` into ``directory``.

    ``safetensors``: ``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json``; with ``shards=2`` the
    embeddings go to the first shard and the rest to the second (as the tiny fixtures), otherwise shards are filled
    up to ``max_shard_bytes`` in name order. ``bin``: a single ``pytorch_model.bin``.
    """
    if fmt == "bin":
        torch.save(dict(sorted(weights.items())), directory / "pytorch_model.bin")
        return
    names = sorted(weights)
    if max_shard_bytes:
        groups: list[list[str]] = [[]]
        size = 0
        for n in names:
            nbytes = weights[n].numel() * weights[n].element_size()
            if groups[-1] and size + nbytes > max_shard_bytes:
                groups.append([])
                size = 0
            groups[-1].append(n)
            size += nbytes
    elif shards == 2:
        first = [n for n in names if "embed" in n]
        groups = [first, [n for n in names if n not in first]]
    else:
        groups = [names]
    total = sum(t.numel() * t.element_size() for t in weights.values())
    weight_map: dict[str, str] = {}
    for i, group in enumerate(groups, 1):
        fname = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        save_file({n: weights[n].contiguous() for n in group}, str(directory / fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in group})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
