"""Data-layer benchmark: glmtune's default mode vs the official ChatGLM3 ``MultiTurnDataset`` algorithm.

Both start from the same JSONL file of ChatGLM3 ``conversations`` records (a deterministic synthetic set shaped like
public ChatGLM3 fine-tuning data: a shared system prompt in most records, a quarter with tool definitions drawn from
a small pool and ``tool`` turns, 1-5 rounds) and end with every record's ``input_ids`` and ``labels`` in memory.

* baseline: the official per-sample, per-message algorithm (``format_conversation`` + ``MultiTurnDataset``:
  ``build_single_message`` per message through the official tokenizer layering, loss mask, shift, pad to 2048),
  reimplemented here over the same SentencePiece model;
* glmtune: ``read_paths`` + ``render_columns`` (batched encoding with duplicate texts encoded once, this process
  and fork workers);
* cached rerun: ``prepare_dataset`` a second time (fingerprint + memory-mapped Arrow file) vs the uncached first run.

Both sides are first checked equal (untimed); each timed run is then a fresh interpreter, the sides alternating,
median of ``--repeat`` each. ``--json`` prints one JSON object with the figures (one run, the same records for all).

The command as the user runs it (``command_*``): a fresh ``--command-records`` file (60,000 by default) of the same
kind, timed from outside, file to file, each run a new process, the sides alternating, medians of ``--repeat``:

* ``glmtune preprocess --model TOKENIZER --data FILE --output OUT`` with its defaults (one process per core, the
  fingerprint cache on, an empty cache directory each run so nothing is reused);
* the official per-message algorithm as a whole process (``bench_data.py --official-file``: only ``json`` and
  ``sentencepiece`` imported, the official ``SPTokenizer`` special ids, ``MultiTurnDataset`` per record, each
  sample written as one compact JSON line, truncated at 2,048 but not padded: the same bytes as glmtune's line
  wherever the official sample is not cut, which is checked once, untimed).

``command_startup_s`` is the same command on a one-record file (start-up, tokenizer, cache, output: the fixed
cost), ``help_s`` is ``glmtune --help``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import gc
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# glmtune is imported inside the functions that use it: the --official-file child imports json and sentencepiece only

FIXTURES = Path(os.environ.get("GLMTUNE_FIXTURES", REPO.parent / "shared" / "fixtures"))
TOKENIZER = FIXTURES / "prep" / "tokenizers" / "chatglm3"
MAX_LEN = 2048
TOOL_PREFIX = "Answer the following questions as best as you can. You have access to the following tools:\n"
SYSTEMS = [
    "You are a helpful assistant.",
    "你是一个乐于助人的助手，请用简洁的中文回答。",
    "You are ChatGLM3, a large language model trained by Zhipu.AI. Follow the user's instructions carefully.",
]


# ---------------------------------------------------------------------------------------------------- data
def _snippets() -> list[str]:
    doc = json.loads((FIXTURES / "prep" / "chatglm3-multiturn.json").read_text(encoding="utf-8"))
    out = {
        m["content"]
        for c in doc["cases"]
        for m in c["record"].get("conversations", [])
        if isinstance(m, dict) and isinstance(m.get("content"), str) and 0 < len(m["content"]) < 200
    }
    return sorted(out)


def _tool_pool(rng: random.Random, snippets: list[str]) -> list[list[dict[str, Any]]]:
    pool = []
    for k in range(8):
        tools = []
        for j in range(rng.randint(2, 3)):
            props = {
                f"arg{a}": {"type": rng.choice(["string", "integer"]), "description": rng.choice(snippets)}
                for a in range(rng.randint(1, 4))
            }
            tools.append(
                {
                    "name": f"api_{k}_{j}",
                    "description": " ".join(rng.sample(snippets, 3)),
                    "parameters": {"type": "object", "properties": props, "required": sorted(props)[:1]},
                }
            )
        pool.append(tools)
    return pool


def make_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    snippets = _snippets()
    tools_pool = _tool_pool(rng, snippets)

    def say(lo: int, hi: int) -> str:
        return " ".join(rng.choice(snippets) for _ in range(rng.randint(lo, hi)))

    records = []
    for _ in range(n):
        conv: list[dict[str, Any]] = []
        rec: dict[str, Any] = {}
        if rng.random() < 0.7:
            conv.append({"role": "system", "content": rng.choice(SYSTEMS)})
        tools = rng.choice(tools_pool) if rng.random() < 0.25 else None
        if tools:
            rec["tools"] = tools
        for _ in range(rng.randint(1, 5)):
            conv.append({"role": "user", "content": say(1, 5)})
            if tools and rng.random() < 0.5:
                tool = rng.choice(tools)
                args = {a: rng.choice(snippets)[:20] for a in tool["parameters"]["properties"]}
                conv.append(
                    {"role": "tool", "name": tool["name"], "parameters": args, "observation": {"result": say(1, 2)}}
                )
            conv.append({"role": "assistant", "content": say(2, 14)})
        rec["conversations"] = conv
        records.append(rec)
    return records


# ---------------------------------------------------------------------------------------------------- baseline
class OfficialLayering:
    """The official ChatGLM3 tokenizer's call layering around SentencePiece (``ChatGLMTokenizer`` →
    ``SPTokenizer``): ``get_command`` with its asserts, ``encode`` with its type assert."""

    def __init__(self, sp_model: Any, special_tokens: dict[str, int]) -> None:
        self.sp_model = sp_model
        self.special_tokens = dict(special_tokens)
        self.commands = {
            "<bos>": self.sp_model.bos_id(),
            "<eos>": self.sp_model.eos_id(),
            "<pad>": self.sp_model.unk_id(),
        }

    def sp_encode(self, s: str) -> list[int]:
        assert type(s) is str
        return self.sp_model.encode(s)

    def get_command(self, token: str) -> int:
        if token in self.commands:
            return self.commands[token]
        assert token in self.special_tokens, token
        return self.special_tokens[token]

    @property
    def eos_token_id(self) -> int:
        return self.get_command("<eos>")

    @property
    def pad_token_id(self) -> int:
        return self.get_command("<pad>")

    def build_single_message(self, role: str, metadata: str, message: str) -> list[int]:
        assert role in ["system", "user", "assistant", "observation"], role
        role_tokens = [self.get_command(f"<|{role}|>"), *self.sp_encode(f"{metadata}\n")]
        return role_tokens + self.sp_encode(message)


def official_special_tokens(sp_model: Any) -> dict[str, int]:
    """The official ChatGLM3 ``SPTokenizer``'s special ids: numbered after the SentencePiece vocabulary."""
    names = ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]
    return {name: sp_model.vocab_size() + i for i, name in enumerate(names)}


def format_function_call(function_name: str, parameters: dict[str, Any]) -> str:
    """The official ``format_function_call``: an ``ast.Call`` of keyword constants, unparsed (the official code
    used astunparse, which writes the same text for these arguments)."""
    keywords = [ast.keyword(arg=name, value=ast.Constant(value)) for name, value in parameters.items()]
    call = ast.Call(func=ast.Name(id=function_name), args=[], keywords=keywords)
    return ast.unparse(call).strip()


def official_sample(item: dict[str, Any], tok: OfficialLayering, pad: bool = True) -> dict[str, list[int]]:
    """``MultiTurnDataset.__getitem__`` (``format_conversation``) as the official demo computes it."""
    conversations = copy.deepcopy(item["conversations"])
    tokens, loss_masks = [tok.get_command("[gMASK]"), tok.get_command("sop")], [0, 0]

    def update(ids: list[int], value: Any = 1) -> None:
        value = int(value)
        tokens.extend(ids)
        loss_masks.extend([value] * len(ids))

    if "tools" in item:
        conversations.insert(
            0, {"role": "system", "content": TOOL_PREFIX + json.dumps(item["tools"], indent=4, ensure_ascii=False)}
        )
    for conv in conversations:
        loss = conv.get("loss", True)
        if conv["role"] in {"system", "user"}:
            loss = False
        if conv["role"] == "tool":
            value = "```python\n" + format_function_call("tool_call", conv["parameters"]) + "\n```"
            update(tok.build_single_message("assistant", conv["name"], value), loss)
            obs = conv.get("observation", None)
            if not isinstance(obs, str):
                obs = json.dumps(obs, ensure_ascii=False)
            update(tok.build_single_message("observation", "", obs), False)
        else:
            update(tok.build_single_message(conv["role"], "", conv["content"]), loss)
    update([tok.eos_token_id], False)
    target_mask = [False, *loss_masks[:-1]]
    labels = [(t if m else -100) for t, m in zip(tokens, target_mask, strict=True)]
    tokens, labels = tokens[:MAX_LEN], labels[:MAX_LEN]
    if not pad:
        return {"input_ids": tokens, "labels": labels}
    tokens += [tok.pad_token_id] * (MAX_LEN - len(tokens))
    labels += [-100] * (MAX_LEN - len(labels))
    return {"input_ids": tokens, "labels": labels}


def run_baseline(path: Path, tok: Any) -> tuple[float, list[dict[str, list[int]]]]:
    layering = OfficialLayering(tok.sp_model, tok.special_tokens)
    start = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    out = [official_sample(r, layering) for r in records]
    return time.perf_counter() - start, out


# ---------------------------------------------------------------------------------------------------- glmtune
def run_glmtune(path: Path, tok: Any, num_proc: int | None) -> tuple[float, Any]:
    from glmtune.data.pipeline import render_columns
    from glmtune.data.read import read_paths
    from glmtune.families import get_family

    family = get_family("chatglm3")
    start = time.perf_counter()
    raws, issues = read_paths([path], lazy=True)  # as prepare_dataset reads: JSON lines parsed in the workers
    cols = render_columns(raws, tok, family, num_proc=num_proc)
    elapsed = time.perf_counter() - start
    assert not issues
    return elapsed, cols


def run_cache(path: Path, tok: Any, cache_dir: Path, num_proc: int | None) -> tuple[float, float]:
    from glmtune.data.pipeline import prepare_dataset

    start = time.perf_counter()
    first = prepare_dataset(path, tok, "chatglm3", cache_dir=cache_dir, num_proc=num_proc)
    t_first = time.perf_counter() - start
    start = time.perf_counter()
    second = prepare_dataset(path, tok, "chatglm3", cache_dir=cache_dir, num_proc=num_proc)
    t_cached = time.perf_counter() - start
    assert len(first) == len(second)
    return t_first, t_cached


def check_equal(path: Path, tok: Any, num_proc: int | None) -> list[int]:
    """Both sides give the same ids and labels wherever the official sample is not cut (untimed); the lengths."""
    _, cols = run_glmtune(path, tok, num_proc)
    rows, lengths = cols.rows(), cols.lengths().tolist()
    del cols
    _, base = run_baseline(path, tok)
    for b, o in zip(base, rows, strict=True):
        m = len(o["input_ids"])
        if m <= MAX_LEN:
            assert b["input_ids"][:m] == o["input_ids"] and b["labels"][:m] == o["labels"]
    return lengths


def _tokenizer() -> Any:
    from glmtune.families import get_family
    from glmtune.tokenization import load_tokenizer

    return load_tokenizer(TOKENIZER, get_family("chatglm3"))


def _timed_child(side: str, path: Path, num_proc: int | None, conn: Any) -> None:
    tok = _tokenizer()
    gc.disable()
    seconds = run_glmtune(path, tok, num_proc)[0] if side == "glmtune" else run_baseline(path, tok)[0]
    conn.send(seconds)


def timed_run(side: str, path: Path, num_proc: int | None) -> float:
    """Seconds of one run of ``side`` in a fresh interpreter (spawned, tokenizer loaded untimed): every timed run
    starts from the same clean state, as what one run allocates and frees would slow down the next in the same
    process (and a fork's copy-on-write faults would tax whichever side allocates most); the cyclic GC is off."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_timed_child, args=(side, path, num_proc, send))
    proc.start()
    seconds = recv.recv()
    proc.join()
    return seconds


# ---------------------------------------------------------------------------------------------------- command
def official_file(src: Path, dst: Path) -> None:
    """The official algorithm as a whole process, file to file (the ``--official-file`` child)."""
    from sentencepiece import SentencePieceProcessor

    sp = SentencePieceProcessor(model_file=str(TOKENIZER / "tokenizer.model"))
    layering = OfficialLayering(sp, official_special_tokens(sp))
    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
        for line in f:
            if line.strip():
                sample = official_sample(json.loads(line), layering, pad=False)
                out.write(json.dumps(sample, separators=(",", ":")) + "\n")


def write_records(path: Path, n: int, seed: int) -> None:
    records = make_records(n, seed)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _command(side: str, src: Path, dst: Path, work: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if side == "baseline":
        return [sys.executable, str(Path(__file__).resolve()), "--official-file", str(src), str(dst)], env
    cache = Path(tempfile.mkdtemp(dir=work, prefix="cache-"))  # empty: nothing from an earlier run is reused
    env["GLMTUNE_CACHE"] = str(cache)
    cmd = [sys.executable, "-m", "glmtune.cli", "preprocess", "--model", str(TOKENIZER), "--data", str(src)]
    return [*cmd, "--output", str(dst)], env


def time_command(side: str, src: Path, dst: Path, work: Path) -> float:
    cmd, env = _command(side, src, dst, work)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def check_files(ours: Path, theirs: Path) -> int:
    """Same line wherever the official sample is not cut at MAX_LEN (there: a prefix); the number of cut ones."""
    cut = 0
    with open(ours, "rb") as a, open(theirs, "rb") as b:
        for x, y in zip(a, b, strict=True):
            if x != y:
                o, t = json.loads(x), json.loads(y)
                assert len(o["input_ids"]) > MAX_LEN and o["input_ids"][:MAX_LEN] == t["input_ids"], "outputs differ"
                cut += 1
    return cut


def command_figures(n: int, repeat: int, work: Path) -> dict[str, Any]:
    src, one = work / "records.jsonl", work / "one.jsonl"
    write_records(src, n, seed=1)  # not the pipeline part's records: a file nothing has seen
    write_records(one, 1, seed=2)
    ours, theirs = work / "glmtune.jsonl", work / "official.jsonl"
    runs: dict[str, list[float]] = {"glmtune": [], "baseline": [], "startup": [], "baseline_startup": [], "help": []}
    for k in range(repeat):  # alternating, so the machine's noise hits both sides alike
        runs["glmtune"].append(time_command("glmtune", src, ours, work))
        runs["baseline"].append(time_command("baseline", src, theirs, work))
        if k == 0:
            cut = check_files(ours, theirs)
        runs["startup"].append(time_command("glmtune", one, work / "one-out.jsonl", work))
        runs["baseline_startup"].append(time_command("baseline", one, work / "one-official.jsonl", work))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "glmtune.cli", "--help"], check=True, stdout=subprocess.DEVNULL)
        runs["help"].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in runs.items()}
    pairs = [b / a for a, b in zip(runs["glmtune"], runs["baseline"], strict=True)]
    return {
        "command_records": n,
        "command_file_mb": round(src.stat().st_size / 1e6, 1),
        "command_output_mb": round(ours.stat().st_size / 1e6, 1),
        "command_cut_by_official": cut,
        "command_s": round(med["glmtune"], 2),
        "baseline_command_s": round(med["baseline"], 2),
        "command_speedup": round(statistics.median(pairs), 2),
        "command_startup_s": round(med["startup"], 3),
        "baseline_startup_s": round(med["baseline_startup"], 3),
        "help_s": round(med["help"], 3),
        "command_runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
    }


def pipeline_figures(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from glmtune.data.pack import packed_ratio

    tok = _tokenizer()
    path = tmp / "multiturn.jsonl"
    records = make_records(args.records)
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    n = len(records)
    del records
    gc.collect()
    lengths = check_equal(path, tok, args.num_proc)
    ours, base = [], []
    for _ in range(args.repeat):  # alternate the two: the machine's noise hits both
        ours.append(timed_run("glmtune", path, args.num_proc))
        base.append(timed_run("baseline", path, args.num_proc))
    t_ours, t_base = statistics.median(ours), statistics.median(base)
    t_first, t_cached = run_cache(path, tok, tmp / "cache", args.num_proc)
    return {
        "records": n,
        "mean_tokens": round(sum(lengths) / n, 1),
        "samples_per_s": round(n / t_ours, 1),
        "baseline_samples_per_s": round(n / t_base, 1),
        "speedup": round(t_base / t_ours, 2),
        "first_run_s": round(t_first, 3),
        "cached_rerun_s": round(t_cached, 4),
        "cached_rerun_speedup": round(t_first / t_cached, 1),
        "useful_token_ratio_padded": round(sum(min(x, MAX_LEN) for x in lengths) / (n * MAX_LEN), 4),
        "useful_token_ratio_packed": round(packed_ratio([min(x, MAX_LEN) for x in lengths], MAX_LEN), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=16000, help="records of the pipeline part")
    parser.add_argument("--command-records", type=int, default=60000, help="records of the whole-command part")
    parser.add_argument("--parts", default="pipeline,command", help="pipeline, command or both")
    parser.add_argument("--num-proc", type=int, default=None, help="glmtune worker processes (default: one per core)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (the median is reported)")
    parser.add_argument("--official-file", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.official_file:
        official_file(Path(args.official_file[0]), Path(args.official_file[1]))
        return
    parts = set(args.parts.split(","))
    figures: dict[str, Any] = {
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "num_proc": args.num_proc or "one per core",
        "load_avg_1min_before": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory() as tmp:
        if "pipeline" in parts:
            figures.update(pipeline_figures(args, Path(tmp)))
        if "command" in parts:
            work = Path(tmp) / "command"
            work.mkdir()
            figures.update(command_figures(args.command_records, args.repeat, work))
    figures["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:28s} {v}")


if __name__ == "__main__":
    main()
