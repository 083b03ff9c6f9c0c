"""Build the tiny tokenizers in ``glmtune/assets/tiny/`` from text the project itself contains.

Deterministic: two runs write byte-identical files (single-threaded SentencePiece, no shuffling, fixed seed,
a pure-Python BPE trainer with total tie-breaking). Outputs:

- ``corpus.txt``: the training text, i.e. every string of every file under ``examples/`` (sorted by name) followed by
  ``extra_text.txt``.
- ``chatglm_sp.model``: ChatGLM2/3-style SentencePiece BPE (4000 pieces, byte fallback, no pad piece); the ChatGLM2/3
  special tokens are not in it, the tokenizer appends them after the base vocabulary at runtime.
- ``ice_text.model``: ChatGLM-6B (v1) ``ice_text.model`` layout: ``<unk> <s> </s> <pad> <n> ▁``, unigram pieces, then
  ``[MASK] [gMASK] [sMASK] <unused_0> <sop> <eop> <ENC> <dBLOCK>``, ``<|tab|>``, ``<|blank_2..80|>``, ``<0x00..FF>``.
- ``glm4_tokenizer.model``: GLM-4-style tiktoken rank file: 256 single bytes, then learned byte-level BPE merges.
- ``SHA256SUMS``: the sha256 of the four files above.

Usage: ``python scripts/build_tiny_tokenizers.py [--out DIR] [--examples DIR] [--extra FILE] [--glm4-ranks N]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import heapq
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import regex
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from glmtune.tokenization.tiktoken_glm4 import GLM4_PATTERN  # noqa: E402

ASSETS = REPO / "glmtune" / "assets" / "tiny"
EXAMPLES = REPO / "examples"
EXTRA_TEXT = ASSETS / "extra_text.txt"
SEED = 1234
CHATGLM_SP_VOCAB = 4000
ICE_TEXT_VOCAB = 2000  # pieces produced by training (0..ICE_TEXT_VOCAB-1), before the appended ones
GLM4_RANKS = 4000
GENERATED = ("corpus.txt", "chatglm_sp.model", "ice_text.model", "glm4_tokenizer.model")
JSON_AS_TEXT_KEYS = ("tools", "parameters", "observation")  # rendered as JSON text in ChatGLM3/GLM-4 prompts
SKIPPED_KEYS = ("role",)  # role names become special tokens, not text
V1_CONTROL = ("[MASK]", "[gMASK]", "[sMASK]", "<unused_0>", "<sop>", "<eop>", "<ENC>", "<dBLOCK>")
V1_USER_DEFINED = ("<|tab|>", *(f"<|blank_{n}|>" for n in range(2, 81)))


# ----------------------------------------------------------------------------------------------- corpus
def _strings(node: Any) -> Iterator[str]:
    """Every string in a JSON value, in document order; tool schemas/calls/results also as one JSON text.

    Values of ``SKIPPED_KEYS`` are left out.
    """
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in SKIPPED_KEYS:
                continue
            if key in JSON_AS_TEXT_KEYS and not isinstance(value, str):
                yield json.dumps(value, ensure_ascii=False)
            yield from _strings(value)


def _file_records(path: Path) -> list[Any]:
    """The JSON values of a ``.json`` (whole file, else JSON Lines) or ``.jsonl`` file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            return [json.loads(text)]
        except json.JSONDecodeError:
            pass
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def example_strings(examples_dir: Path) -> list[str]:
    """The text of every file under ``examples_dir``: JSON string values, other files verbatim; sorted by path."""
    out: list[str] = []
    for path in sorted(p for p in examples_dir.rglob("*") if p.is_file()):
        if path.suffix in (".json", ".jsonl"):
            for record in _file_records(path):
                out.extend(_strings(record))
        else:
            out.append(path.read_text(encoding="utf-8"))
    return out


def build_corpus(examples_dir: Path, extra_text: Path) -> str:
    """Corpus text: one non-blank line per line of the example strings, then of ``extra_text``."""
    chunks = [*example_strings(examples_dir), extra_text.read_text(encoding="utf-8")]
    lines = [line.rstrip() for chunk in chunks for line in chunk.splitlines()]
    return "".join(line + "\n" for line in lines if line.strip())


# ----------------------------------------------------------------------------------------------- SentencePiece
def _train_sentencepiece(lines: list[str], **options: Any) -> sp_pb.ModelProto:
    """Train SentencePiece in memory, single-threaded and unshuffled, and return the parsed ModelProto."""
    spm.set_random_generator_seed(SEED)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buffer,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=1,
        max_sentence_length=100000,
        character_coverage=0.9995,
        minloglevel=2,
        **options,
    )
    model = sp_pb.ModelProto()
    model.ParseFromString(buffer.getvalue())
    return model


def train_chatglm_sp(lines: list[str], vocab_size: int = CHATGLM_SP_VOCAB) -> bytes:
    """ChatGLM2/3-style BPE model; trainer flags as in the fixture ``tokenizer.model``.

    The normalizer is ``identity`` like the official ChatGLM2/3 model (which encodes ``\\n`` as ``<0x0A>`` and keeps
    full-width ``，``), not the fixture's ``nmt_nfkc`` (which turns ``\\n`` into a space): text round-trips exactly.
    """
    model = _train_sentencepiece(
        lines,
        model_type="bpe",
        vocab_size=vocab_size,
        normalization_rule_name="identity",
        split_digits=True,
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
    )
    model.trainer_spec.model_prefix = "chatglm_sp"
    return model.SerializeToString()


def _move_space_piece(model: sp_pb.ModelProto, index: int) -> None:
    """Put the bare ``▁`` piece at ``index`` (as in the official ice_text.model), scored just above its successor."""
    pieces = list(model.pieces)
    current = next(i for i, p in enumerate(pieces) if p.piece == "▁")
    if current == index:
        return
    space = sp_pb.ModelProto.SentencePiece()
    space.CopyFrom(pieces[current])
    del model.pieces[current]
    model.pieces.insert(index, space)
    model.pieces[index].score = max(p.score for p in model.pieces[index + 1 :] if p.type == p.NORMAL) + 1e-3


def train_ice_text(lines: list[str], vocab_size: int = ICE_TEXT_VOCAB) -> bytes:
    """ChatGLM-6B ``ice_text.model``: trained unigram pieces, then the official appended CONTROL/USER/BYTE pieces."""
    model = _train_sentencepiece(
        lines,
        model_type="unigram",
        vocab_size=vocab_size,
        normalization_rule_name="nmt_nfkc",
        seed_sentencepiece_size=200000,
        user_defined_symbols=["<n>"],
        byte_fallback=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        unk_piece="<unk>",
        bos_piece="<s>",
        eos_piece="</s>",
        pad_piece="<pad>",
    )
    _move_space_piece(model, 5)
    kinds = sp_pb.ModelProto.SentencePiece
    appended = (
        [(p, kinds.CONTROL) for p in V1_CONTROL]
        + [(p, kinds.USER_DEFINED) for p in V1_USER_DEFINED]
        + [(f"<0x{b:02X}>", kinds.BYTE) for b in range(256)]
    )
    for piece, kind in appended:
        model.pieces.add(piece=piece, score=0.0, type=kind)
    model.trainer_spec.byte_fallback = True
    model.trainer_spec.model_prefix = "ice_text"
    return model.SerializeToString()


# ----------------------------------------------------------------------------------------------- GLM-4 BPE
def train_byte_bpe(text: str, n_ranks: int, pattern: str = GLM4_PATTERN) -> list[bytes]:
    """Tokens of a byte-level BPE in rank order: the 256 bytes, then merges learned over ``pattern`` chunks.

    Each step merges the most frequent adjacent pair (ties: smaller left bytes, then smaller right bytes). A merge
    whose bytes already are a token (reached by another split) is applied without adding a rank.
    """
    vocab: list[bytes] = [bytes([b]) for b in range(256)]
    token_of: dict[bytes, int] = {tok: i for i, tok in enumerate(vocab)}
    chunk_counts = Counter(m.group(0).encode("utf-8") for m in regex.finditer(pattern, text))
    words: list[list[int]] = [list(chunk) for chunk in sorted(chunk_counts)]
    freqs: list[int] = [chunk_counts[chunk] for chunk in sorted(chunk_counts)]
    pair_counts: Counter[tuple[int, int]] = Counter()
    where: dict[tuple[int, int], set[int]] = {}
    for w, word in enumerate(words):
        for pair in pairwise(word):
            pair_counts[pair] += freqs[w]
            where.setdefault(pair, set()).add(w)

    def entry(pair: tuple[int, int]) -> tuple[int, bytes, bytes, tuple[int, int]]:
        return (-pair_counts[pair], vocab[pair[0]], vocab[pair[1]], pair)

    heap = [entry(pair) for pair in pair_counts]
    heapq.heapify(heap)
    while len(vocab) < n_ranks and heap:
        neg, _, _, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg or neg == 0:
            continue  # stale entry
        merged = vocab[pair[0]] + vocab[pair[1]]
        if merged not in token_of:
            token_of[merged] = len(vocab)
            vocab.append(merged)
        new_id = token_of[merged]
        changed: set[tuple[int, int]] = set()
        for w in sorted(where.pop(pair, ())):
            word = words[w]
            before = Counter(pairwise(word))
            if pair not in before:
                continue
            out: list[int] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            words[w] = out
            after = Counter(pairwise(out))
            for p in before.keys() | after.keys():
                delta = (after[p] - before[p]) * freqs[w]
                if delta:
                    pair_counts[p] += delta
                    changed.add(p)
                if after[p]:
                    where.setdefault(p, set()).add(w)
        for p in sorted(changed):
            if pair_counts[p] <= 0:
                del pair_counts[p]
            else:
                heapq.heappush(heap, entry(p))
    return vocab


def rank_file(tokens: Iterable[bytes]) -> bytes:
    """tiktoken rank file: ``base64(token) rank`` per line."""
    return "".join(f"{base64.b64encode(tok).decode('ascii')} {rank}\n" for rank, tok in enumerate(tokens)).encode()


# ----------------------------------------------------------------------------------------------- checks
SAMPLES = (
    "你好，我是 glmtune 小助手。",
    "I am the glmtune demo assistant. 1+1=2, 12 + 30 = 42.",
    'def add(a, b):\n    return a + b\n{"city": "北京", "temperature": 20}',
    "罕见字：龘 emoji 🙂 and tab\tend",
)


def check_outputs(out: Path) -> None:
    """Load every written tokenizer and check that it encodes and round-trips sample text."""
    import tiktoken

    sp = spm.SentencePieceProcessor(model_file=str(out / "chatglm_sp.model"))
    assert sp.IdToPiece(0) == "<unk>" and sp.IdToPiece(1) == "<s>" and sp.IdToPiece(2) == "</s>"
    for text in SAMPLES:
        assert sp.decode(sp.encode(text)) == text, text
    ice = spm.SentencePieceProcessor(model_file=str(out / "ice_text.model"))
    assert [ice.IdToPiece(i) for i in range(6)] == ["<unk>", "<s>", "</s>", "<pad>", "<n>", "▁"]
    assert ice.encode("a<n>b", out_type=str).count("<n>") == 1
    assert ice.decode(ice.encode("中文 English 123")) == "中文 English 123"
    assert "<0xF0>" in ice.encode("🙂", out_type=str)
    assert ice.decode(ice.encode("🙂")) == "🙂"
    ranks: dict[bytes, int] = {}
    for line in (out / "glm4_tokenizer.model").read_text(encoding="ascii").splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    assert sorted(ranks.values()) == list(range(len(ranks)))
    enc = tiktoken.Encoding(name="glm4_tiny", pat_str=GLM4_PATTERN, mergeable_ranks=ranks, special_tokens={})
    corpus = (out / "corpus.txt").read_text(encoding="utf-8")
    for text in (*SAMPLES, corpus):
        assert enc.decode(enc.encode_ordinary(text)) == text


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------- main
def build(
    out: Path,
    examples_dir: Path = EXAMPLES,
    extra_text: Path = EXTRA_TEXT,
    glm4_ranks: int = GLM4_RANKS,
    chatglm_vocab: int = CHATGLM_SP_VOCAB,
    ice_vocab: int = ICE_TEXT_VOCAB,
) -> dict[str, str]:
    """Write every generated file and SHA256SUMS into ``out``; return ``{file name: sha256}``."""
    out.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus(examples_dir, extra_text)
    lines = corpus.splitlines()
    (out / "corpus.txt").write_bytes(corpus.encode("utf-8"))
    (out / "chatglm_sp.model").write_bytes(train_chatglm_sp(lines, chatglm_vocab))
    (out / "ice_text.model").write_bytes(train_ice_text(lines, ice_vocab))
    (out / "glm4_tokenizer.model").write_bytes(rank_file(train_byte_bpe(corpus, glm4_ranks)))
    check_outputs(out)
    sums = {name: sha256(out / name) for name in GENERATED}
    (out / "SHA256SUMS").write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()), encoding="ascii")
    return sums


def main(argv: list[str] | None = None) -> int:
    """Command line entry: build into ``--out`` (default ``glmtune/assets/tiny``) and print sizes and hashes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSETS)
    parser.add_argument("--examples", type=Path, default=EXAMPLES)
    parser.add_argument("--extra", type=Path, default=EXTRA_TEXT)
    parser.add_argument("--glm4-ranks", type=int, default=GLM4_RANKS)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sums = build(args.out, args.examples, args.extra, args.glm4_ranks)
    for name, digest in sums.items():
        print(f"{digest}  {name}  ({(args.out / name).stat().st_size} bytes)")
    print(f"built in {time.perf_counter() - start:.1f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
