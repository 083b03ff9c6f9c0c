"""One meaning for a run's data source: a training config's ``data.format``/``data.columns``/``data.dataset_info``
give exactly the rows ``preprocess --format/--columns`` gives for the same data, in the default mode and in the
official P-Tuning modes (whose prompt/response/history columns are inferred the same way); a mapping no mode would
read is refused, never silently ignored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from glmtune.config.load import build_config, load_config
from glmtune.data.preprocess import preprocess
from glmtune.errors import GlmtuneError
from glmtune.families import get_family
from glmtune.tokenization import load_tokenizer
from glmtune.train.datasets import build_datasets
from tests.conftest import fixtures_dir

TOKS = fixtures_dir("prep", "tokenizers")


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def _config(tmp_path: Path, data: dict[str, Any], family: str) -> Any:
    sections = {
        "model": {"path": str(TOKS / family), "family": family},
        "data": data,
        "training": {"output_dir": str(tmp_path / "run")},
    }
    return build_config(sections, source=str(tmp_path / "cfg.yaml"))


def _train_rows(cfg: Any, family: str) -> list[dict[str, Any]]:
    tok = load_tokenizer(TOKS / family, get_family(family))
    ds = build_datasets(cfg, tok, get_family(family)).train
    return ds.remove_columns([c for c in ds.column_names if c == "length"]).to_list()


def _preprocess_rows(tmp_path: Path, family: str, data: list[Path], **kwargs: Any) -> list[dict[str, Any]]:
    done = preprocess(TOKS / family, data, tmp_path / "pre.jsonl", family=family, **kwargs)
    return done.table.drop_columns(["length"]).to_pylist()


DIALOG = [{"dialog": [{"from": "human", "value": f"问题{i}"}, {"from": "gpt", "value": f"回答{i}"}]} for i in range(3)]


@pytest.fixture
def info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GLMTUNE_CACHE", str(tmp_path / "cache"))
    _write(tmp_path / "mine.jsonl", DIALOG)
    entry = {"file_name": "mine.jsonl", "formatting": "sharegpt", "columns": {"messages": "dialog"}}
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": entry}), encoding="utf-8")
    return tmp_path / "dataset_info.json"


def test_dataset_info_entry_is_read_like_preprocess_columns(tmp_path: Path, info: Path) -> None:
    cfg = _config(tmp_path, {"dataset_info": f"{info}:mine", "max_length": 64}, "chatglm3")
    want = _preprocess_rows(tmp_path, "chatglm3", [], columns=f"{info}:mine", settings={"max_length": 64})
    assert _train_rows(cfg, "chatglm3") == want and len(want) == 3
    # with data.train given, the entry still names the columns
    cfg = _config(tmp_path, {"train": [str(tmp_path / "mine.jsonl")], "dataset_info": f"{info}:mine"}, "chatglm3")
    assert len(_train_rows(cfg, "chatglm3")) == 3


def test_dataset_info_in_a_yaml_file(tmp_path: Path, info: Path) -> None:
    (tmp_path / "cfg.yaml").write_text(
        f"model: {{path: {TOKS / 'chatglm3'}, family: chatglm3}}\ndata: {{dataset_info: 'dataset_info.json:mine'}}\n"
        f"training: {{output_dir: {tmp_path / 'run'}}}\n",
        encoding="utf-8",
    )
    cfg = load_config(tmp_path / "cfg.yaml")  # FILE is found next to the config, as data files are
    assert len(_train_rows(cfg, "chatglm3")) == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dataset_info": "x.json:mine", "columns": {"prompt": "q"}}, "data.columns and data.dataset_info"),
        ({"dataset_info": "nofile.json:mine"}, "nofile.json: cannot read"),
        ({"dataset_info": "{}"}, "data.dataset_info"),
        ({"dataset_info": "INFO:nope"}, "no dataset 'nope'"),
    ],
)
def test_bad_dataset_info_is_one_clear_error(tmp_path: Path, info: Path, data: dict[str, Any], message: str) -> None:
    data = {k: (v.replace("INFO", str(info)) if isinstance(v, str) else v) for k, v in data.items()}
    cfg = _config(tmp_path, {"train": [str(tmp_path / "mine.jsonl")], **data}, "chatglm3")
    with pytest.raises(GlmtuneError, match=message):
        _train_rows(cfg, "chatglm3")


ADGEN = [{"content": f"类型#上衣*颜色#{c}", "summary": f"一件{c}的上衣"} for c in ("黑色", "白色", "红色")]
PRH = [
    {"prompt": "q1", "response": "r1", "history": []},
    {"prompt": "q2", "response": "r2", "history": [["h", "a"]]},
]
CUSTOM = [{"q": "问", "a": "答"}, {"q": "再问", "a": "再答"}]


@pytest.mark.parametrize("family", ["chatglm2", "chatglm"])
@pytest.mark.parametrize(("rows", "columns"), [(ADGEN, None), (PRH, None), (CUSTOM, {"prompt": "q", "response": "a"})])
def test_ptuning_modes_infer_columns_as_preprocess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, family: str, rows: list[dict[str, Any]], columns: Any
) -> None:
    monkeypatch.setenv("GLMTUNE_CACHE", str(tmp_path / "cache"))
    data = _write(tmp_path / "d.jsonl", rows)
    mode = f"{family}-ptuning"
    lengths = {"max_source_length": 16, "max_target_length": 8}
    cfg = _config(
        tmp_path, {"train": [str(data)], "mode": mode, **lengths, **({"columns": columns} if columns else {})}, family
    )
    want = _preprocess_rows(
        tmp_path,
        family,
        [data],
        mode=mode,
        columns=json.dumps(columns) if columns else None,
        settings={**lengths, "ignore_pad_token_for_loss": True},
    )
    assert _train_rows(cfg, family) == want and len(want) == len(rows)


def test_a_mapping_no_mode_reads_is_refused(tmp_path: Path, info: Path) -> None:
    data = _write(tmp_path / "c.jsonl", [{"conversations": [{"role": "user", "content": "q"}]}])
    cfg = _config(
        tmp_path, {"train": [str(data)], "mode": "chatglm3-multiturn", "columns": {"messages": "x"}}, "chatglm3"
    )
    with pytest.raises(GlmtuneError, match="applies to the default and ptuning modes"):
        _train_rows(cfg, "chatglm3")
    with pytest.raises(GlmtuneError, match="applies to the default and ptuning modes"):
        preprocess(TOKS / "chatglm3", [data], tmp_path / "o.jsonl", mode="chatglm3-multiturn", columns=f"{info}:mine")
