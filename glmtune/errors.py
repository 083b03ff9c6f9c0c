"""The one exception type for user mistakes: the CLI prints its message on one line and exits 2."""

from __future__ import annotations


class GlmtuneError(Exception):
    """A problem with the user's input (files, config, data, arguments), not a bug in glmtune.

    The message names the file (and line/record/field where there is one) and what is wrong.
    """

    exit_code = 2


class GlmtuneWarning(UserWarning):
    """Something the user should know that does not stop the command; the CLI prints ``warning: ...`` on one line."""


def where(path: object, line: int | None = None, field: str | None = None) -> str:
    """Format a location prefix ``FILE:LINE: field:`` for error messages."""
    out = str(path)
    if line is not None:
        out += f":{line}"
    if field:
        out += f": {field}"
    return out
