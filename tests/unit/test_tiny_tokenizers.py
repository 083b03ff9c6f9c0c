"""The committed tiny tokenizers in glmtune/assets/tiny/: reproducible from the repo, and usable by our tokenizers."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb

from glmtune.tokenization.sentencepiece_glm import BASE_SPECIAL_TOKENS, ROLE_TOKENS, SentencePieceGLMTokenizer
from glmtune.tokenization.tiktoken_glm4 import GLM4_SPECIAL_TOKENS, GLM4Tokenizer, read_ranks

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "glmtune" / "assets" / "tiny"
SCRIPT = REPO / "scripts" / "build_tiny_tokenizers.py"
EXTRA_SAMPLES = (
    "你好，我是 glmtune 小助手。",
    "I am the glmtune demo assistant.\n1+1=2\t12 + 30 = 42",
    'def add(a, b):\n    return a + b\n\n{"city": "北京", "temperature": 20}',
    "全角：ＡＢＣ１２３，！？ 罕见字：龘 emoji 🙂",
    "   leading and  double  spaces   ",
)


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_tiny_tokenizers", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    return _load_script()


@pytest.fixture(scope="module")
def example_texts(builder: ModuleType) -> list[str]:
    texts = [t for t in builder.example_strings(REPO / "examples") if t.strip()]
    assert len(texts) > 200
    return [*texts, *EXTRA_SAMPLES]


def _model_proto(path: Path) -> sp_pb.ModelProto:
    model = sp_pb.ModelProto()
    model.ParseFromString(path.read_bytes())
    return model


def test_regeneration_is_byte_identical(builder: ModuleType, tmp_path: Path) -> None:
    sums = builder.build(tmp_path)
    assert set(sums) == set(builder.GENERATED)
    for name in (*builder.GENERATED, "SHA256SUMS"):
        assert (tmp_path / name).read_bytes() == (ASSETS / name).read_bytes(), (
            f"{name} differs from a fresh build: run scripts/build_tiny_tokenizers.py and commit the result"
        )


def test_sha256sums_and_sizes() -> None:
    lines = (ASSETS / "SHA256SUMS").read_text(encoding="ascii").splitlines()
    assert len(lines) == 4
    for line in lines:
        digest, name = line.split("  ")
        path = ASSETS / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
        assert path.stat().st_size < 1_000_000, name


def test_chatglm_sp_model_flags() -> None:
    model = _model_proto(ASSETS / "chatglm_sp.model")
    spec, norm = model.trainer_spec, model.normalizer_spec
    assert spec.model_type == sp_pb.TrainerSpec.BPE and spec.vocab_size == len(model.pieces) == 4000
    assert spec.byte_fallback and spec.split_digits and spec.num_threads == 1 and not spec.shuffle_input_sentence
    assert (spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id) == (0, 1, 2, -1)
    assert [p.piece for p in model.pieces[:3]] == ["<unk>", "<s>", "</s>"]
    assert norm.add_dummy_prefix and not norm.remove_extra_whitespaces
    pieces = {p.piece for p in model.pieces}
    assert not pieces & {*BASE_SPECIAL_TOKENS, *ROLE_TOKENS} - {"sop", "eop"}
    assert sum(p.type == p.BYTE for p in model.pieces) == 256


def test_chatglm3_tokenizer_round_trips_examples(example_texts: list[str]) -> None:
    tok = SentencePieceGLMTokenizer(str(ASSETS / "chatglm_sp.model"), role_tokens=True)
    for text in example_texts:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.sp_model.unk_id() not in ids, text
        assert tok.decode(ids) == text
        assert tok.sp_model.decode(tok.encode_text(text)) == text
    assert tok.sp_model.encode("\n", out_type=str) == ["▁", "<0x0A>"]


def test_chatglm3_special_ids_follow_base_vocab() -> None:
    tok = SentencePieceGLMTokenizer(str(ASSETS / "chatglm_sp.model"), role_tokens=True)
    n_base = tok.sp_model.vocab_size()
    assert n_base == 4000
    specials = (*BASE_SPECIAL_TOKENS, *ROLE_TOKENS)
    assert tok.special_tokens == {t: n_base + i for i, t in enumerate(specials)}
    assert tok.get_prefix_tokens() == [4001, 4003]
    assert len(tok) == n_base + len(specials)
    ids = tok.build_single_message("user", "", "你好")
    assert ids == [tok.get_command("<|user|>"), *tok.encode_text("\n"), *tok.encode_text("你好")]
    assert tok.decode(ids[1:3]) == "\n" and ids[2] == 13  # <0x0A>, as in the official ChatGLM3 vocabulary


def test_ice_text_layout() -> None:
    model = _model_proto(ASSETS / "ice_text.model")
    kinds = sp_pb.ModelProto.SentencePiece
    pieces = [p.piece for p in model.pieces]
    n = model.trainer_spec.vocab_size
    assert 1000 <= n <= 3000 and model.trainer_spec.model_type == sp_pb.TrainerSpec.UNIGRAM
    assert model.normalizer_spec.name == "nmt_nfkc" and model.trainer_spec.byte_fallback
    assert pieces[:6] == ["<unk>", "<s>", "</s>", "<pad>", "<n>", "▁"]
    assert [p.type for p in model.pieces[:5]] == [
        kinds.UNKNOWN,
        kinds.CONTROL,
        kinds.CONTROL,
        kinds.CONTROL,
        kinds.USER_DEFINED,
    ]
    assert all(p.type == kinds.NORMAL for p in model.pieces[5:n])
    control = ["[MASK]", "[gMASK]", "[sMASK]", "<unused_0>", "<sop>", "<eop>", "<ENC>", "<dBLOCK>"]
    user = ["<|tab|>", *(f"<|blank_{k}|>" for k in range(2, 81))]
    byte = [f"<0x{b:02X}>" for b in range(256)]
    assert pieces[n:] == control + user + byte
    types = [p.type for p in model.pieces[n:]]
    assert types == [kinds.CONTROL] * 8 + [kinds.USER_DEFINED] * 80 + [kinds.BYTE] * 256


def test_ice_text_encodes_and_decodes() -> None:
    sp = spm.SentencePieceProcessor(model_file=str(ASSETS / "ice_text.model"))
    for text in ("你好<n>世界", "Hello, world!", "a<|blank_4|>b<|tab|>c", "🙂龘", "1+1=2"):
        assert sp.decode(sp.encode(text)) == text
    assert "<n>" in sp.encode("上<n>下", out_type=str)
    assert sp.encode("🙂", out_type=str)[1:] == ["<0xF0>", "<0x9F>", "<0x99>", "<0x82>"]
    assert sp.encode("[gMASK]", out_type=str) != ["[gMASK]"]  # CONTROL pieces are not matched in text


def test_glm4_tokenizer_round_trips(example_texts: list[str]) -> None:
    path = ASSETS / "glm4_tokenizer.model"
    ranks = read_ranks(str(path))
    assert sorted(ranks.values()) == list(range(4000))
    assert all(ranks[bytes([b])] == b for b in range(256))
    tok = GLM4Tokenizer(str(path))
    assert tok.n_base == 4000
    assert tok.special_tokens == {t: 4000 + i for i, t in enumerate(GLM4_SPECIAL_TOKENS)}
    corpus = (ASSETS / "corpus.txt").read_text(encoding="utf-8")
    for text in [*example_texts, corpus]:
        ids = tok.encode_text(text)
        assert tok.decode(ids) == text
    assert len(tok.encode_text(corpus)) < len(corpus.encode("utf-8")) // 2  # the merges compress their own corpus


def test_examples_are_valid() -> None:
    conversations = json.loads((REPO / "examples" / "chatglm3_conversations.json").read_text(encoding="utf-8"))
    assert len(conversations) >= 30
    assert sum("tools" in record for record in conversations) >= 2
    for record in conversations:
        roles = [m["role"] for m in record["conversations"]]
        assert roles[-1] == "assistant" and "system" not in roles[1:]
        for message in record["conversations"]:
            if message["role"] == "tool":
                assert {"name", "parameters", "observation"} <= message.keys()
    for name in ("adgen_train.json", "adgen_dev.json", "prompt_response_history.jsonl"):
        for line in (REPO / "examples" / name).read_text(encoding="utf-8").splitlines():
            json.loads(line)
    tools = json.loads((REPO / "examples" / "tools.json").read_text(encoding="utf-8"))
    assert all(t["type"] == "function" and t["function"]["parameters"]["type"] == "object" for t in tools)
