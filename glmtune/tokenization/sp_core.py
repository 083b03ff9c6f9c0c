"""The official ``SPTokenizer`` layer of ChatGLM2/3: SentencePiece plus the special ids numbered after its vocabulary.

It needs neither transformers nor torch, so ``glmtune preprocess`` renders with it directly (see
:func:`glmtune.tokenization.load_encoder`); :class:`~glmtune.tokenization.sentencepiece_glm.SentencePieceGLMTokenizer`
is this plus the transformers tokenizer API.
"""

from __future__ import annotations

from sentencepiece import SentencePieceProcessor

from glmtune.families.chatglm2 import CHATGLM2
from glmtune.families.chatglm3 import CHATGLM3

BASE_SPECIAL_TOKENS = CHATGLM2.special_tokens  # declared once, in the families
ROLE_TOKENS = CHATGLM3.special_tokens[len(BASE_SPECIAL_TOKENS) :]


class SentencePieceCore:
    """SentencePiece model + special ids of ChatGLM2-6B (``role_tokens=False``) or ChatGLM3-6B."""

    cache_name = "SentencePieceGLMTokenizer"  # what the preprocessing cache keys on (shared with the full class)

    def __init__(self, vocab_file: str, role_tokens: bool = True) -> None:
        self.vocab_file = vocab_file
        self.sp_model = SentencePieceProcessor(model_file=vocab_file)
        self.role_tokens = bool(role_tokens)
        self.n_base = self.sp_model.vocab_size()
        specials = BASE_SPECIAL_TOKENS + (ROLE_TOKENS if self.role_tokens else ())
        self.special_tokens = {tok: self.n_base + i for i, tok in enumerate(specials)}
        self.index_special_tokens = {i: tok for tok, i in self.special_tokens.items()}

    def get_command(self, token: str) -> int:
        """Id of a special token by its official name (``[gMASK]``, ``sop``, ``<|user|>``, ``<eos>``...)."""
        named = {"<bos>": self.sp_model.bos_id(), "<eos>": self.sp_model.eos_id(), "<pad>": self.sp_model.unk_id()}
        if token in named:
            return named[token]
        if token not in self.special_tokens:
            raise KeyError(f"{token} is not a special token of this tokenizer")
        return self.special_tokens[token]

    @property
    def eos_token_id(self) -> int:
        return self.sp_model.eos_id()

    @property
    def pad_token_id(self) -> int:
        return self.sp_model.unk_id()

    @property
    def unk_token_id(self) -> int:
        return self.sp_model.unk_id()

    def encode_text(self, text: str) -> list[int]:
        """SentencePiece ids of ``text``, no special-token handling (the official ``tokenizer.tokenizer.encode``)."""
        return self.sp_model.encode(text)

    def get_prefix_tokens(self) -> list[int]:
        return [self.special_tokens["[gMASK]"], self.special_tokens["sop"]]
