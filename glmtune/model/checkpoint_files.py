"""Find and check the weight files of a checkpoint directory before anything is loaded.

Supports ``model.safetensors``, sharded ``model-XXXXX-of-YYYYY.safetensors`` with ``model.safetensors.index.json``,
``pytorch_model.bin`` and sharded ``pytorch_model-*.bin`` with ``pytorch_model.bin.index.json``. Pickled files are
read with ``weights_only=True`` and memory-mapped, so checking costs no RAM.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from glmtune.errors import GlmtuneError

INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class WeightFiles:
    """The weight files of a checkpoint, in load order."""

    directory: Path
    files: tuple[Path, ...]
    index: Path | None

    @property
    def is_safetensors(self) -> bool:
        return self.files[0].suffix == ".safetensors"


def find_weight_files(directory: Path) -> WeightFiles:
    """The weight files of ``directory`` (safetensors preferred), checking an index names only existing files."""
    for index_name in INDEX_FILES:
        index = directory / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise GlmtuneError(f"{index}: not a valid weight index ({e})") from None
            names = sorted(set(weight_map.values()))
            for name in names:
                if not (directory / name).is_file():
                    key = next(k for k, v in weight_map.items() if v == name)
                    raise GlmtuneError(f"{index}: names missing file {name} (for {key})")
            return WeightFiles(directory, tuple(directory / n for n in names), index)
    for name in SINGLE_FILES:
        if (directory / name).is_file():
            return WeightFiles(directory, (directory / name,), None)
    raise GlmtuneError(
        f"{directory}: no weights found (expected model.safetensors[.index.json] or pytorch_model.bin[.index.json])"
    )


def unreadable_weights(path: Path, error: Exception) -> GlmtuneError:
    """One clear line for a weight file that ``torch.load(weights_only=True)`` (or safetensors) refused.

    A pickle that needs anything but tensors and plain containers (a class, a function such as ``os.system``)
    is refused on purpose: say so, instead of suggesting the file is damaged.
    """
    text = str(error).strip()
    if text.startswith("Weights only load failed") or "unsupported global" in text.lower():
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" (it asks for {found.group(1)})" if found else ""
        return GlmtuneError(
            f"{path}: refused for safety: the pickle holds objects other than tensors{what}; glmtune reads "
            "pickled weights with weights_only=True and never runs code from a checkpoint"
        )
    first = text.splitlines()[0] if text else type(error).__name__
    return GlmtuneError(f"{path}: cannot read weights (truncated or corrupt?): {first}")


def iter_shapes(files: WeightFiles) -> Iterator[tuple[str, tuple[int, ...], Path]]:
    """(name, shape, file) of every stored tensor, reading headers only."""
    for path in files.files:
        if path.suffix == ".safetensors":
            try:
                with safe_open(str(path), framework="pt") as f:
                    for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
                        yield key, tuple(f.get_slice(key).get_shape()), path
            except Exception as e:  # truncated or corrupt file
                raise GlmtuneError(f"{path}: cannot read safetensors file ({e})") from None
        else:
            try:
                state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            except Exception as e:
                raise unreadable_weights(path, e) from None
            for key, tensor in state.items():
                yield key, tuple(tensor.shape), path
            del state


def check_tensors(files: WeightFiles, expected: dict[str, tuple[int, ...]], ignore: tuple[str, ...] = ()) -> None:
    """Raise one clear error if a tensor is missing, unexpected or has the wrong shape."""
    seen: set[str] = set()
    for key, shape, path in iter_shapes(files):
        if key in expected:
            if tuple(expected[key]) != shape:
                raise GlmtuneError(
                    f"{path}: {key}: shape {list(shape)} does not match config.json (expected {list(expected[key])})"
                )
            seen.add(key)
        elif not any(part in key for part in ignore):
            raise GlmtuneError(f"{path}: {key}: unexpected tensor for this architecture")
    missing = [k for k in expected if k not in seen]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise GlmtuneError(f"{files.directory}: missing tensor {missing[0]}{more}")
