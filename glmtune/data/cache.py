"""Fingerprint cache: a preprocessed data set is computed once per (data, tokenizer, settings) and reused.

The fingerprint hashes the bytes of every input file (xxh3, so even GBs hash in about a second), the tokenizer's
vocabulary file and chat template, the family, the format/column mapping, the mode and every setting, and the
data layer's version. An entry is one Arrow stream file (the format ``datasets`` memory-maps) plus a meta file,
written with pyarrow alone (``glmtune preprocess`` never imports ``datasets``) to a temporary sibling and renamed
into place, under ``$GLMTUNE_CACHE`` (default ``~/.cache/glmtune``) ``/prep/<fingerprint>``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import xxhash

DATA_VERSION = "3"  # 2: ChatGLM2 default mode keeps a `sop` piece in message text as text; 3: one Arrow file
"""Bump when rendering changes, so old cache entries are not reused."""


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache directory: ``cache_dir``, else ``$GLMTUNE_CACHE``, else ``~/.cache/glmtune``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("GLMTUNE_CACHE") or Path.home() / ".cache" / "glmtune")


def _hash_file(h: Any, path: Path) -> None:
    h.update(str(path.resolve()).encode())
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)


def hash_inputs(paths: Iterable[str | Path]) -> str:
    """Hash of the paths and the bytes of every file under them."""
    h = xxhash.xxh3_128()
    for p in paths:
        path = Path(p)
        files = sorted(q for q in path.rglob("*") if q.is_file()) if path.is_dir() else [path]
        for f in files:
            _hash_file(h, f)
    return h.hexdigest()


def hash_tokenizer(tokenizer: Any) -> str:
    h = xxhash.xxh3_128()
    h.update(str(getattr(tokenizer, "cache_name", type(tokenizer).__name__)).encode())
    h.update(str(getattr(tokenizer, "glmtune_family", "")).encode())
    vocab = getattr(tokenizer, "vocab_file", None)
    if vocab and Path(vocab).is_file():
        with open(vocab, "rb") as f:
            h.update(f.read())
    h.update(str(getattr(tokenizer, "chat_template", "")).encode())
    return h.hexdigest()


def fingerprint(paths: Iterable[str | Path], tokenizer: Any, settings: dict[str, Any]) -> str:
    """The cache key of preprocessing ``paths`` with ``tokenizer`` and ``settings`` (JSON-able values)."""
    h = xxhash.xxh3_128()
    h.update(DATA_VERSION.encode())
    h.update(hash_inputs(paths).encode())
    h.update(hash_tokenizer(tokenizer).encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def entry(key: str, cache_dir: str | Path | None = None) -> Path:
    return cache_root(cache_dir) / "prep" / key


DATA_FILE = "data.arrow"
META_FILE = "glmtune_meta.json"


def load_table(key: str, cache_dir: str | Path | None = None) -> tuple[Any, dict[str, Any]] | None:
    """(memory-mapped ``pyarrow.Table``, meta) of a cache entry, or None."""
    path = entry(key, cache_dir)
    if not (path / META_FILE).is_file():
        return None
    import pyarrow as pa

    try:
        with pa.memory_map(str(path / DATA_FILE)) as source:
            table = pa.ipc.open_stream(source).read_all()
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except Exception:  # a damaged entry is recomputed
        return None
    return table, meta


def load(key: str, cache_dir: str | Path | None = None) -> tuple[Any, dict[str, Any]] | None:
    """(memory-mapped ``datasets.Dataset``, meta) of a cache entry, or None."""
    hit = load_table(key, cache_dir)
    if hit is None:
        return None
    import datasets
    from datasets.table import MemoryMappedTable

    table = MemoryMappedTable(hit[0], str(entry(key, cache_dir) / DATA_FILE))
    return datasets.Dataset(table, fingerprint=key), hit[1]


def store(key: str, table: Any, meta: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
    """Write a cache entry (a ``pyarrow.Table``) atomically (temporary sibling, then rename)."""
    import pyarrow as pa

    path = entry(key, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with pa.OSFile(str(tmp / DATA_FILE), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    (tmp / META_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    if (path / META_FILE).is_file():  # another run stored the same fingerprint meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        return path
    shutil.rmtree(path, ignore_errors=True)  # a damaged entry
    try:
        os.replace(tmp, path)
    except OSError:  # a concurrent run stored it first
        shutil.rmtree(tmp, ignore_errors=True)
    return path
