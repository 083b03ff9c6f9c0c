"""The data layer: every record shape → the exact official token ids and loss masks, validated, packed, fast.

    read (files → raw records with FILE:LINE) → formats (detect, normalise to messages) → validate
    → render (one renderer per family, or an official-compatible mode) → collate / pack → cache

See docs/data.md.
"""

from glmtune.data.formats import FORMATS, FormatSpec, spec_from_dataset_info
from glmtune.data.pipeline import MODES, load_raw, load_records, prepare_dataset, render_records
from glmtune.data.record import DataErrors, DataIssue, Origin, RawRecord, Record, Report

__all__ = [
    "FORMATS",
    "MODES",
    "DataErrors",
    "DataIssue",
    "FormatSpec",
    "Origin",
    "RawRecord",
    "Record",
    "Report",
    "load_raw",
    "load_records",
    "prepare_dataset",
    "render_records",
    "spec_from_dataset_info",
]
