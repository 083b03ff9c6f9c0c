"""Data modes: how records become samples, each with its own settings (one validated dataclass per mode).

A mode is one :class:`Mode` in the ``MODES`` tuple of one file: glmtune's default mode in
``data/render/default_mode.py``, each official processor in a file of ``data/render/official/``. The file holds the
mode's settings dataclass (fields made with :func:`setting`: kind, default, the ``data.*`` key of a training
config it is read from), its column inference (:meth:`ModeSettings.from_source`) and what it renders; the registry
(:func:`all_modes`) finds the files, so adding a mode is adding one file. The training config, ``glmtune
preprocess``, the board and the pipeline ask the mode (:meth:`Mode.from_config`, :meth:`Mode.from_options`,
:meth:`Mode.build`) instead of branching on its name; every check is here, with one line naming the YAML key or flag.
"""

from __future__ import annotations

import dataclasses
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError

DEFAULT_MODE = "default"
KINDS = ("length", "bool", "text", "column", "choice")


def setting(
    default: Any,
    kind: str,
    *,
    config: str | None = None,
    half: bool = False,
    flag: bool = True,
    only_here: bool = False,
    choices: tuple[str, ...] = (),
) -> Any:
    """A settings field. ``kind``: length (a whole number >= 1), bool, text, column (a column name) or choice (one of
    ``choices``); ``config``: the ``data.*`` key a training config sets it with (None: not from a config);
    ``half``: when that key is unset, half of ``data.max_length``; ``flag``: ``glmtune preprocess`` has
    ``--<name>``; ``only_here``: the config key means nothing to the other modes (setting it there is refused)."""
    assert kind in KINDS, kind
    meta = {"kind": kind, "config": config, "half": half, "flag": flag, "only_here": only_here, "choices": choices}
    return dataclasses.field(default=default, metadata=meta)


def flag_name(name: str) -> str:
    """The ``glmtune preprocess`` option of a setting."""
    return "--" + name.replace("_", "-")


def _check(value: Any, f: dataclasses.Field[Any], where: str) -> None:
    kind = f.metadata["kind"]
    if kind == "choice":
        choices = f.metadata["choices"]
        if value not in choices:
            raise GlmtuneError(f"{where} {value!r}: choose {', '.join(choices[:-1])} or {choices[-1]}")
        return
    if kind == "length":
        ok, want = isinstance(value, int) and not isinstance(value, bool) and value >= 1, "a whole number >= 1"
    elif kind == "bool":
        ok, want = isinstance(value, bool), "true or false"
    else:
        ok, want = isinstance(value, str), "a string"
    if not ok:
        raise GlmtuneError(f"{where}: expected {want}, got {value!r}")


@dataclass(frozen=True)
class ModeSettings:
    """Base of the settings of one mode; a subclass's fields (made with :func:`setting`) are its settings."""

    def kwargs(self) -> dict[str, Any]:
        """The settings by name, as the pipeline (``render_records(..., **kwargs)``) and the cache key take them."""
        return dataclasses.asdict(self)

    def limit(self) -> int | None:
        """The sample length truncation cuts to, when the mode has one (for "N truncated to L tokens")."""
        return None

    def row_length(self) -> int:
        """The row length the statistics measure padding against."""
        return self.limit() or 2048

    @classmethod
    def from_source(
        cls,
        mode: str,
        given: dict[str, Any],
        data: Sequence[Path],
        split: str | None,
        fmt: Any,
        columns: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """``given`` plus what the mode takes from the data source (its format ``fmt``, the column mapping
        ``columns``). Here: an official mode reads records exactly as stored, so a column mapping is refused."""
        from glmtune.data.formats import FormatSpec

        if columns or isinstance(fmt, FormatSpec):
            raise GlmtuneError(
                f"mode {mode} reads its records as the official code does (its own field names): a column mapping "
                "(--columns, data.columns, data.dataset_info) applies to the default and ptuning modes only"
            )
        return given


@dataclass(frozen=True)
class Mode:
    """One data mode: its settings class and what renders with them. ``family``: the family whose tokenizer an
    official processor needs (None: glmtune's default mode, any family); ``process(records, tokenizer, variant,
    settings)`` returns a :class:`~glmtune.data.render.official.common.BatchResult` (official modes)."""

    name: str
    title: str
    settings: type[ModeSettings]
    family: str | None = None
    variants: tuple[str, ...] = ("train",)
    batch_size: int = 1000  # records per official batch (``datasets.map``'s default, which decides eval padding)
    process: Callable[..., Any] | None = dataclasses.field(default=None, repr=False)
    collate: Callable[..., Any] | None = dataclasses.field(default=None, repr=False)  # (features, tokenizer): its own

    @property
    def official(self) -> bool:
        """An official processor: raw records in, the official output keys (padded rows) out."""
        return self.family is not None

    def fields(self) -> tuple[dataclasses.Field[Any], ...]:
        return dataclasses.fields(self.settings)

    def build(self, options: Mapping[str, Any], name: Callable[[str], str] = str) -> ModeSettings:
        """The validated settings from ``options`` by setting name (None or absent: the default); ``name`` spells a
        setting as the user wrote it (``data.max_length``, ``--max-seq-length``) in the one-line errors."""
        fields = {f.name: f for f in self.fields()}
        unknown = sorted(k for k, v in options.items() if v is not None and k not in fields)
        if unknown:
            shown = [name(f.name) for f in fields.values() if f.metadata["flag"] or name is str]
            raise GlmtuneError(
                f"mode {self.name} has no setting {', '.join(name(k) for k in unknown)} (settings: {', '.join(shown)})"
            )
        values = {}
        for key, f in fields.items():
            value = options.get(key)
            if value is not None:
                _check(value, f, name(key))
                values[key] = value
        return self.settings(**values)

    def from_options(
        self,
        options: Mapping[str, Any],
        data: Sequence[Path] = (),
        split: str | None = None,
        fmt: Any = None,
        columns: dict[str, Any] | None = None,
    ) -> ModeSettings:
        """The settings ``glmtune preprocess`` options give (by setting name, None: not given), with the columns
        inferred from ``data`` when any is given; errors name the flags."""
        given = {k: v for k, v in options.items() if v is not None}
        if data:
            given = self.settings.from_source(self.name, given, data, split, fmt, columns)
        return self.build(given, flag_name)

    def from_config(
        self,
        d: Any,
        data: Sequence[Path] = (),
        split: str | None = None,
        fmt: Any = None,
        columns: dict[str, Any] | None = None,
    ) -> ModeSettings:
        """The settings a training config's data section ``d`` gives (:class:`~glmtune.config.schema.DataConfig`),
        with the columns inferred from ``data`` when any is given; errors name the ``data.*`` keys."""
        keys = {f.name: f.metadata["config"] for f in self.fields()}
        for other in all_modes().values():
            for f in other.fields():
                key = f.metadata["config"]
                mine = other is self or key in keys.values()
                if f.metadata["only_here"] and not mine and getattr(d, key) != f.default:
                    raise GlmtuneError(
                        f"data.{key} applies to the {other.name} mode, not {self.name!r} (it has its own rules)"
                    )
        options: dict[str, Any] = {}
        for f in self.fields():
            key = keys[f.name]
            if key is None:
                continue
            value = getattr(d, key)
            if value is None and f.metadata["half"] and d.max_length is not None:
                _check(d.max_length, f, "data.max_length")
                value = d.max_length // 2
            options[f.name] = value
        given = {k: v for k, v in options.items() if v is not None}
        if data:
            given = self.settings.from_source(self.name, given, data, split, fmt, columns)
        return self.build(given, lambda n: f"data.{keys.get(n) or 'columns'}")

    def run(self, records: list[Any], tokenizer: Any, variant: str, settings: ModeSettings) -> Any:
        """Outputs of one batch of raw records (official modes; errors per record in ``BatchResult.errors``)."""
        if variant not in self.variants:
            raise GlmtuneError(f"mode {self.name} has no {variant!r} variant (has: {', '.join(self.variants)})")
        assert self.process is not None, f"mode {self.name} renders in the pipeline"
        return self.process(records, tokenizer, variant, settings)


@cache
def all_modes() -> dict[str, Mode]:
    """Every mode by name: the default mode, then the official ones (newest family first, then by file name), from
    the ``MODES`` of ``data/render/default_mode.py`` and of each module of ``data/render/official/``."""
    from glmtune.data.render import default_mode, official

    found: list[Mode] = list(default_mode.MODES)
    official_modes: list[Mode] = []
    for info in sorted(pkgutil.iter_modules(official.__path__), key=lambda i: i.name):
        module = import_module(f"{official.__name__}.{info.name}")
        official_modes += getattr(module, "MODES", ())
    found += sorted(official_modes, key=lambda m: m.family or "", reverse=True)
    return {m.name: m for m in found}


def get_mode(name: str, where: str = "") -> Mode:
    """The mode called ``name``; ``where`` names the option in the error (``data.mode``, ``--mode``)."""
    modes = all_modes()
    if name not in modes:
        raise GlmtuneError(f"{where + ': ' if where else ''}unknown mode {name!r}; known: {', '.join(modes)}")
    return modes[name]


def modes_reading(key: str) -> tuple[str, ...]:
    """The modes whose settings a training config's ``data.<key>`` sets."""
    return tuple(m.name for m in all_modes().values() if any(f.metadata["config"] == key for f in m.fields()))
