"""The fast path of the default mode: the segment layout equals the reference assembly on any plan, the forked
workers give exactly what one process gives (ids, labels, order, truncation, issues), their arrays come back
through the shared memory file, and a failing or dying worker is an error in the parent, never a hang."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmtune.data import DataErrors, Report, prepare_dataset
from glmtune.data.parallel import render_default
from glmtune.data.pipeline import normalize_records, render_columns
from glmtune.data.read import read_paths
from glmtune.data.record import Origin, RawRecord, Record
from glmtune.data.render import renderer_for
from glmtune.data.render.base import Layout, Plan, Turn, assemble
from glmtune.data.render.chatglm3 import ChatGLM3Renderer
from glmtune.data.sharedmem import SharedFile
from glmtune.families import get_family
from glmtune.tokenization import load_tokenizer
from tests.conftest import fixtures_dir

PREP = fixtures_dir("prep")
FAMILY = get_family("chatglm3")
TOK = load_tokenizer(PREP / "tokenizers" / "chatglm3", FAMILY)


# ---------------------------------------------------------------------------------------------------- layout
ids = st.lists(st.integers(1, 3000), max_size=3).map(tuple)
piece = st.one_of(st.sampled_from(["", "a", "hello world", "\n", "中文。", "  x"]), ids)
turns = st.builds(Turn, ids, st.lists(piece, max_size=3), st.booleans(), st.booleans())
plans = st.builds(Plan, ids, st.lists(turns, max_size=5), st.sampled_from([(), (2,), (2, 7)]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(plans, min_size=1, max_size=6), st.one_of(st.none(), st.integers(1, 40)))
def test_layout_equals_reference_assembly(batch: list[Plan], max_length: int | None) -> None:
    renderer = renderer_for(TOK, FAMILY)
    layout = Layout.of(batch)
    texts = [k for k in layout.keys if type(k) is str]
    encoded = dict(zip(texts, renderer.encode_texts(texts), strict=True))
    flat = layout.assemble(layout.encoded(renderer.encode_texts), list(enumerate(batch)), max_length)
    for (owner, sample), plan in zip(zip(flat.owners, flat.samples(), strict=True), batch, strict=True):
        ref = assemble(plan, encoded, max_length)
        assert (sample.input_ids, sample.labels, sample.truncated) == (ref.input_ids, ref.labels, ref.truncated)
        assert owner == batch.index(plan) or batch.count(plan) > 1


# ---------------------------------------------------------------------------------------------------- processes
def _records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Fixture conversations shuffled into ``n`` records, with a few invalid ones and some long ones."""
    cases = json.loads((PREP / "chatglm3-multiturn.json").read_text(encoding="utf-8"))["cases"]
    candidates = [RawRecord(c["record"], Origin("f", 1)) for c in cases if "tools" not in c["record"]]
    pool = [r.raw for r in normalize_records(candidates, "chatglm3")[0]]
    assert len(pool) > 5
    rng = random.Random(seed)
    out = []
    for i in range(n):
        rec = json.loads(json.dumps(rng.choice(pool)))
        if i % 97 == 5:
            rec["conversations"].append({"role": "assistant", "content": 7})  # invalid: content not a string
        elif i % 13 == 0:
            rec["conversations"] = rec["conversations"] * 6  # long: cut at max_length
        out.append(rec)
    return out


def _summary(cols: Any) -> tuple[Any, ...]:
    return (cols.column("input_ids"), cols.column("labels"), cols.owners.tolist(), cols.truncated)


def test_workers_give_what_one_process_gives(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in _records(2600)) + "\n", encoding="utf-8")
    results = []
    for procs in (1, 2, 3):
        report = Report()
        raws, unreadable = read_paths([path], lazy=True)
        assert not unreadable and all(r.pending and type(r.data) is bytes for r in raws)
        cols = render_columns(raws, TOK, FAMILY, num_proc=procs, max_length=300, skip_invalid=True, report=report)
        results.append((_summary(cols), [str(i) for i in report.invalid], report.truncated))
    assert results[0] == results[1] == results[2]
    summary, invalid, truncated = results[0]
    assert len(invalid) == len([i for i in range(2600) if i % 97 == 5]) and truncated > 100
    assert invalid[0].startswith(f"{path}:6: conversations[")  # in input order, with file and line
    assert all(len(x) <= 300 for x in summary[0])


def test_workers_report_every_invalid_record(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in _records(2100)]
    lines[1500] = '{"conversations": [}'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataErrors) as err:
        prepare_dataset(path, TOK, "chatglm3", use_cache=False, num_proc=2)
    lines_seen = [int(str(i).split(":")[1]) for i in err.value.issues]
    assert lines_seen == sorted(lines_seen) and 1501 in lines_seen
    assert len(lines_seen) == 1 + len([i for i in range(2100) if i % 97 == 5 and i != 1500])


def test_dataset_from_workers_is_plain_writable_int32(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _records(2100)) + "\n", encoding="utf-8")
    raws, _ = read_paths([path], lazy=True)
    cols = render_columns(raws, TOK, FAMILY, num_proc=2, skip_invalid=True)
    for key in ("input_ids", "labels"):  # a worker's chunks are copy-on-write views of its shared file
        assert all(a.dtype == np.int32 and a.flags.writeable for a, _ in cols.flat[key])
    ds = prepare_dataset(path, TOK, "chatglm3", use_cache=False, num_proc=2, skip_invalid=True)
    assert ds[len(ds) - 1]["input_ids"] == cols.column("input_ids")[-1]


def test_shared_file_round_trip_across_fork() -> None:
    shared = SharedFile()
    arrays = [np.arange(5, dtype=np.int32), np.zeros(0, np.int32), np.array([-100, 7, 65536], np.int32)]

    def child(conn: Any) -> None:
        conn.send([shared.put(a) for a in arrays])
        conn.close()

    recv, send = mp.get_context("fork").Pipe(duplex=False)
    proc = mp.get_context("fork").Process(target=child, args=(send,))
    proc.start()
    slots = recv.recv()
    proc.join()
    views = [shared.view(s) for s in slots]
    shared.close()
    assert [v.tolist() for v in views] == [a.tolist() for a in arrays]
    views[0][0] = 42  # writable, and private to this process
    assert views[0].tolist() == [42, 1, 2, 3, 4]


class _FailingRenderer(ChatGLM3Renderer):
    """Raises on one record (a bug in rendering, not a data issue)."""

    def plan(self, record: Record) -> Plan:
        if record.origin.line == 1500:
            raise RuntimeError("renderer bug on record 1500")
        return super().plan(record)


class _DyingRenderer(ChatGLM3Renderer):
    """Kills the worker process it runs in; the parent waits long enough for the worker to take a chunk."""

    parent = os.getpid()

    def plan(self, record: Record) -> Plan:
        if os.getpid() != self.parent:
            os._exit(3)
        if record.origin.line == 1:
            time.sleep(1.0)
        return super().plan(record)


def _valid_records(n: int) -> list[Record]:
    raws = [RawRecord(r, Origin("mem", i + 1)) for i, r in enumerate(_records(n)) if i % 97 != 5]
    records, issues = normalize_records(raws)
    assert not issues
    return records


@pytest.mark.parametrize(
    ("renderer_class", "message"),
    [(_FailingRenderer, "renderer bug on record 1500"), (_DyingRenderer, "a data worker process died")],
)
def test_a_failing_worker_is_an_error_not_a_hang(renderer_class: type, message: str) -> None:
    records = _valid_records(3100)
    renderer = renderer_class(TOK, FAMILY)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=message):
        render_default(renderer, records, None, 2)
    assert time.monotonic() - start < 30
    assert not mp.active_children()


def _render_in_daemon(conn: Any) -> None:
    raws = [RawRecord(r, Origin("mem", i + 1)) for i, r in enumerate(_records(2100)) if i % 97 != 5]
    cols = render_columns(raws, TOK, FAMILY, num_proc=2)
    conn.send(len(cols))


def test_a_daemonic_process_renders_alone() -> None:
    """Inside a pool worker (daemonic: it may not start processes) the default mode runs in that process."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_render_in_daemon, args=(send,), daemon=True)
    proc.start()
    send.close()  # a child that dies is then an EOFError here, not a wait
    assert recv.poll(120) and recv.recv() == len([i for i in range(2100) if i % 97 != 5])
    proc.join()
