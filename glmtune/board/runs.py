"""Training runs the board started: real ``glmtune train`` processes, their status, stop and resume.

Each run has a directory ``WORKDIR/NAME/`` holding ``config.yaml`` (what runs), ``train.log`` (the process's
output) and ``board.json`` (its process id, exit status, whether it was stopped). The process runs in a session
of its own, so closing the page, or the board itself, leaves it training; a board started later finds the run
again from its directory. Progress comes from the run's ``train_log.jsonl`` (see :mod:`glmtune.train.progress`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from glmtune.board.form import to_yaml
from glmtune.errors import GlmtuneError
from glmtune.train.progress import LOG_FILE, Progress, read_progress
from glmtune.train.resume import complete_checkpoints

RECORD = "board.json"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STARTING, RUNNING, FINISHED, STOPPED, FAILED = "starting", "running", "finished", "stopped", "failed"


@dataclass
class RunRecord:
    """What ``board.json`` holds about one run."""

    name: str
    output_dir: str
    pid: int | None = None
    returncode: int | None = None
    stopped: bool = False
    started: float = 0.0
    launches: int = 0

    @classmethod
    def read(cls, directory: Path) -> RunRecord:
        data = json.loads((directory / RECORD).read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def write(self, directory: Path) -> None:
        tmp = directory / f".{RECORD}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, directory / RECORD)


@dataclass
class RunView:
    """A run as the page shows it."""

    name: str
    status: str
    output_dir: Path
    progress: Progress
    checkpoints: list[Path]
    message: str = ""  # why a failed run failed


class RunManager:
    """Starts, watches, stops and resumes the runs under ``workdir``."""

    def __init__(self, workdir: str | Path, cwd: str | Path | None = None, python: str = sys.executable) -> None:
        self.workdir = Path(workdir).resolve()
        self.cwd = Path(cwd or Path.cwd()).resolve()
        self.python = python
        self.procs: dict[str, subprocess.Popen] = {}
        self.lock = threading.RLock()

    # ------------------------------------------------------------------------------------------------ paths
    def run_dir(self, name: str) -> Path:
        return self.workdir / name

    def names(self) -> list[str]:
        """Runs found under the work directory, newest first."""
        if not self.workdir.is_dir():
            return []
        found = [d for d in self.workdir.iterdir() if (d / RECORD).is_file()]
        return [d.name for d in sorted(found, key=lambda d: (d / RECORD).stat().st_mtime_ns, reverse=True)]

    def record(self, name: str) -> RunRecord:
        directory = self.run_dir(name)
        if not (directory / RECORD).is_file():
            raise GlmtuneError(f"run {name!r}: no such run in {self.workdir}")
        return RunRecord.read(directory)

    def default_output_dir(self, name: str) -> Path:
        return self.run_dir(name)

    def output_in_use(self, output: Path) -> str:
        """Why a new run may not write to ``output`` (another run's results are there), or ""."""
        output = output if output.is_absolute() else self.cwd / output
        for name in self.names():
            if Path(self.record(name).output_dir).resolve() == output.resolve():
                return f"training.output_dir: {output} is run {name!r}'s; leave it empty for the run's own"
        if any((output / f).exists() for f in ("glmtune_run.json", "trainer_state.json")) or complete_checkpoints(
            output
        ):
            return f"training.output_dir: {output} holds another training run; choose another or leave it empty"
        return ""

    # ------------------------------------------------------------------------------------------------ launch
    def launch(self, name: str, raw: dict[str, Any]) -> RunRecord:
        """Write the run's config and start ``glmtune train`` on it."""
        name = name.strip()
        directory = self.run_dir(name)
        with self.lock:
            if (directory / RECORD).exists():
                raise GlmtuneError(f"run name {name!r} is taken: choose another, or resume that run")
            raw = {section: dict(body) for section, body in raw.items()}
            training = raw.setdefault("training", {})
            output = Path(training.get("output_dir") or self.default_output_dir(name))
            training["output_dir"] = str(output if output.is_absolute() else self.cwd / output)
            self._absolute_paths(raw)
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "config.yaml").write_text(to_yaml(raw), encoding="utf-8")
            rec = RunRecord(name=name, output_dir=training["output_dir"])
            self._start(directory, rec, [])
            return rec

    def _absolute_paths(self, raw: dict[str, Any]) -> None:
        """Paths relative to the board's directory, made absolute: the YAML runs the same from anywhere."""
        model = raw.get("model", {})
        if model.get("path") and (self.cwd / model["path"]).exists():
            model["path"] = str((self.cwd / model["path"]).resolve())
        data = raw.get("data", {})
        for key in ("train", "eval", "test"):
            if data.get(key):
                data[key] = [str((self.cwd / p).resolve()) if (self.cwd / p).exists() else p for p in data[key]]

    def resume(self, name: str) -> str:
        """Start the run again from its last complete checkpoint; what happened, in words."""
        with self.lock:
            rec = self.record(name)
            if self._alive(name, rec):
                raise GlmtuneError(f"run {name!r} is still running")
            done = complete_checkpoints(Path(rec.output_dir))
            self._start(self.run_dir(name), rec, ["--training.resume", "auto"])
        if done:
            return f"resumed {name} from {done[-1].name}"
        return f"restarted {name} from the beginning (no complete checkpoint yet)"

    def _start(self, directory: Path, rec: RunRecord, extra: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(directory / "train.log", "ab") as log:
            if rec.launches:
                log.write(f"\n---- resumed at {time.strftime('%Y-%m-%d %H:%M:%S')} ----\n".encode())
                log.flush()
            proc = subprocess.Popen(
                [self.python, "-m", "glmtune.cli", "train", str(directory / "config.yaml"), *extra],
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the run outlives the page and the board
            )
        rec.pid, rec.returncode, rec.stopped = proc.pid, None, False
        rec.started, rec.launches = time.time(), rec.launches + 1
        rec.write(directory)
        self.procs[rec.name] = proc
        threading.Thread(target=self._reap, args=(rec.name, proc), daemon=True).start()

    def _reap(self, name: str, proc: subprocess.Popen) -> None:
        code = proc.wait()
        with self.lock:
            rec = self.record(name)
            if rec.pid == proc.pid:
                rec.returncode = code
                rec.write(self.run_dir(name))

    # ------------------------------------------------------------------------------------------------ stop
    def stop(self, name: str, timeout: float = 30.0) -> str:
        """End the run's process (its last complete checkpoint stays for resume); returns once it has exited."""
        with self.lock:
            rec = self.record(name)
            if not self._alive(name, rec):
                return f"{name} is not running"
            rec.stopped = True
            rec.write(self.run_dir(name))
            pid = rec.pid
        assert pid is not None
        self._signal(pid, signal.SIGTERM)
        self._signal(pid, signal.SIGCONT)  # a suspended run (Ctrl-Z, SIGSTOP) takes the SIGTERM too
        if not self._wait_exit(name, pid, timeout):
            self._signal(pid, signal.SIGKILL)
            if not self._wait_exit(name, pid, 10.0):
                raise GlmtuneError(f"run {name!r}: process {pid} did not exit")
        return f"stopped {name}"

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)  # the run leads its own session: its data workers go too
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _wait_exit(self, name: str, pid: int, timeout: float) -> bool:
        proc = self.procs.get(name)
        if proc is not None and proc.pid == pid:
            try:
                proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        import psutil

        try:
            other = psutil.Process(pid)  # another board's child: poll it (a reused pid has another start time)
        except psutil.NoSuchProcess:
            return True
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if not other.is_running() or other.status() == psutil.STATUS_ZOMBIE:
                    return True
            except psutil.NoSuchProcess:
                return True
            time.sleep(0.1)
        return False

    # ------------------------------------------------------------------------------------------------ status
    def _alive(self, name: str, rec: RunRecord) -> bool:
        if rec.pid is None:
            return False
        proc = self.procs.get(name)
        if proc is not None and proc.pid == rec.pid and proc.poll() is not None:
            return False
        return _pid_runs_train(rec.pid)  # poll() says None while the reaper thread waits: ask the system too

    def view(self, name: str) -> RunView:
        """Status, progress and checkpoints of a run."""
        rec = self.record(name)
        output = Path(rec.output_dir)
        progress = read_progress(output / LOG_FILE)
        proc = self.procs.get(name)
        code = rec.returncode
        if code is None and proc is not None and proc.pid == rec.pid:
            code = proc.poll()
        message = ""
        if self._alive(name, rec):
            status = RUNNING if (progress.began_at or 0) >= rec.started else STARTING
        elif code == 0 or (code is None and progress.ended and (output / "trainer_state.json").is_file()):
            status = FINISHED
        elif rec.stopped:
            status = STOPPED
        else:
            status, message = FAILED, self.last_error(name)
        return RunView(name, status, output, progress, complete_checkpoints(output), message)

    def log_tail(self, name: str, lines: int = 14) -> str:
        """The last lines of the run's output, progress bars collapsed to their latest state."""
        path = self.run_dir(name) / "train.log"
        try:
            with open(path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 64_000))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        text = ANSI.sub("", text)  # progress bars move the cursor
        rows = [row.rsplit("\r", 1)[-1] for row in text.replace("\r\n", "\n").split("\n")]
        rows = [row for row in rows if row.strip()]
        return "\n".join(rows[-lines:])

    def last_error(self, name: str) -> str:
        """The ``error: ...`` message (or the last lines) of a failed run's output."""
        tail = self.log_tail(name, 200).splitlines()
        starts = [i for i, row in enumerate(tail) if row.startswith("error:") or "Error" in row.split(":", 1)[0]]
        return "\n".join(tail[starts[-1] : starts[-1] + 6] if starts else tail[-3:])


def _pid_runs_train(pid: int) -> bool:
    """Whether ``pid`` is (still) a ``glmtune ... train`` process (a reused pid is not)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "train" in cmdline and any("glmtune" in part for part in cmdline)
