"""What travels through the data layer: origins, raw and normalised records, and data errors.

Every record remembers where it came from (``FILE:LINE`` for text files, ``FILE:ROW`` for Parquet / ``datasets``
rows, 1-based) so that every problem is reported as ``FILE:LINE: field: what is wrong``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from glmtune.errors import GlmtuneError

Message = dict[str, Any]
"""A normalised message: ``role`` (system|user|assistant|observation), ``content`` (str), optional ``loss``
(bool | None = default), ``metadata`` (str), ``tool_calls`` (list of ``{"name", "arguments"}``), ``tools`` (system
only) and ``src`` (the field path in the original record, for error messages)."""


@dataclass(frozen=True)
class Origin:
    """Where a record came from: a file and its 1-based line (text files) or row (Parquet, ``datasets``)."""

    path: str
    line: int | None = None
    item: int | None = None  # its index in a file whose records may share a line (a JSON list); not printed

    def __str__(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"


@dataclass
class RawRecord:
    """One record exactly as read (a JSON object / CSV row / table row), with its origin. ``pending``: ``data``
    is still the undecoded bytes (or text) of its JSON line, parsed later in a worker (see ``read.materialize``)."""

    data: Any
    origin: Origin
    pending: bool = False


@dataclass
class Record:
    """A record normalised to messages: what every default-mode renderer consumes."""

    messages: list[Message]
    tools: list[Any] | None
    origin: Origin
    fmt: str
    raw: Any = None


@dataclass(frozen=True)
class DataIssue:
    """One problem with one record (or file): printed as ``FILE:LINE: field: message``."""

    origin: Origin
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.field}: {self.message}" if self.field else f"{self.origin}: {self.message}"


class RecordError(Exception):
    """Raised inside normalisation/rendering for one record; the caller attaches the origin."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def issue(self, origin: Origin) -> DataIssue:
        return DataIssue(origin, self.field, self.message)


def count_records(issues: list[DataIssue]) -> int:
    """How many records ``issues`` are about (a record with two bad fields has two issues, and counts once)."""
    return len({i.origin for i in issues})


class DataErrors(GlmtuneError):
    """All problems found in a data set, reported together: a summary line, then one line per problem."""

    SKIP_HINT = "fix them, or pass --skip-invalid to skip them"

    def __init__(self, issues: list[DataIssue], hint: str = SKIP_HINT) -> None:
        self.issues = list(issues)
        n = count_records(self.issues)
        head = f"{n} invalid record{'s' if n != 1 else ''} ({hint}):"
        super().__init__("\n".join([head, *(str(i) for i in self.issues)]))


@dataclass
class Report:
    """What happened to the records of a run besides their output: skipped, truncated, dropped (all counted)."""

    invalid: list[DataIssue] = field(default_factory=list)
    notes: list[DataIssue] = field(default_factory=list)
    truncated: int = 0
    records: int = 0
    samples: int = 0

    @property
    def invalid_records(self) -> int:
        """The number of records skipped as invalid (``invalid`` lists every problem, several per record)."""
        return count_records(self.invalid)

    def merge(self, other: Report) -> None:
        self.invalid += other.invalid
        self.notes += other.notes
        self.truncated += other.truncated
        self.records += other.records
        self.samples += other.samples

    def to_json(self) -> dict[str, Any]:
        def issues(items: list[DataIssue]) -> list[list[Any]]:
            return [[i.origin.path, i.origin.line, i.field, i.message, i.origin.item] for i in items]

        return {
            "invalid": issues(self.invalid),
            "notes": issues(self.notes),
            "truncated": self.truncated,
            "records": self.records,
            "samples": self.samples,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        def issues(items: list[list[Any]]) -> list[DataIssue]:
            return [DataIssue(Origin(p, line, *rest), f, m) for p, line, f, m, *rest in items]

        return cls(issues(data["invalid"]), issues(data["notes"]), data["truncated"], data["records"], data["samples"])


def type_name(value: Any) -> str:
    """JSON-ish name of a value's type for error messages (``null``, ``string``, ``list``...)."""
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        tuple: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)
