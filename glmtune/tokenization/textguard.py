"""Message text stays text through a Jinja chat template.

A chat template writes its own special tokens (``<|user|>``, ``[gMASK]sop``...) around the message text; once
rendered, the string no longer says which spellings came from the template and which from a message. The guard
breaks every special-token spelling inside the conversation's strings with an invisible marker (inserted after
its first character), so that only the template's own specials are found in the rendered text; each text chunk
is then encoded with the marker removed, i.e. exactly as the message was written.

The marker is a private-use character absent from the rendered conversation (also in its ``\\uXXXX`` form, which
``tojson`` writes); a template that changes message text in a way removing the marker cannot undo (slicing, length)
is refused rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from glmtune.errors import GlmtuneError

_CANDIDATES = range(0xE000, 0xF900)


class TextGuard:
    """Protects the special-token spellings of one conversation (or batch) rendered by one template."""

    def __init__(self, specials: Iterable[str], rendered: str | list[str]) -> None:
        ordered = sorted(set(specials), key=len, reverse=True)
        self._special_re = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
        texts = rendered if isinstance(rendered, list) else [rendered]
        lowered = [t.lower() for t in texts]
        self.marker = next(
            chr(c)
            for c in _CANDIDATES
            if not any(chr(c) in t or f"\\u{c:04x}" in low for t, low in zip(texts, lowered, strict=True))
        )
        forms = [self.marker, f"\\u{ord(self.marker):04x}", f"\\u{ord(self.marker):04X}"]
        self._marker_re = re.compile("|".join(re.escape(f) for f in forms))

    def protect(self, value: Any) -> Any:
        """``value`` (a conversation: nested lists/dicts of strings) with every special spelling broken."""
        if isinstance(value, str):
            return self._break(value)
        if isinstance(value, list | tuple):
            return type(value)(self.protect(v) for v in value)
        if isinstance(value, dict):
            return {self.protect(k): self.protect(v) for k, v in value.items()}
        return value

    def _break(self, text: str) -> str:
        if self._special_re is None:
            return text
        while self._special_re.search(text):  # a broken spelling may uncover an overlapping one: repeat
            text = self._special_re.sub(lambda m: m.group(0)[0] + self.marker + m.group(0)[1:], text)
        return text

    def restore(self, text: str) -> str:
        """Rendered (or chunk) text with the markers removed."""
        return self._marker_re.sub("", text)

    def check(self, protected: str | list[str], rendered: str | list[str]) -> None:
        """The protected rendering, markers removed, must be the plain rendering."""
        pairs = zip(protected, rendered, strict=True) if isinstance(rendered, list) else [(protected, rendered)]
        for got, want in pairs:
            if self.restore(got) != want:  # type: ignore[arg-type]
                raise GlmtuneError(
                    "the chat template transforms message text in a way that hides which special-token spellings "
                    "came from the messages; pass compat_official_specials=True to tokenize its text as is"
                )


def encode_guarded(
    render: Callable[[Any], str | list[str]],
    conversation: Any,
    specials: Iterable[str],
    encode_rendered: Callable[[str, Callable[[str], str] | None], list[int]],
) -> tuple[str | list[str], list[list[int]]]:
    """(the rendered text, the ids of each conversation) with message text kept as text."""
    rendered = render(conversation)
    guard = TextGuard(specials, rendered)
    protected = render(guard.protect(conversation))
    guard.check(protected, rendered)
    texts = protected if isinstance(protected, list) else [protected]
    return rendered, [encode_rendered(t, guard.restore) for t in texts]
