"""The CLI's side of checking: one worker process, a time limit per check, a fresh worker after trouble.

The worker's stderr (the learner's prints, Spark's log) goes to `.work/exercises/worker.log`,
shown with `--verbose`. Checks run locally whatever `.env` says: an exercise is graded on the
local engines, the same for every learner. While `expert up`'s warm Spark server runs, a Spark
check's session is a client of it (as any local run's is), so a new check process skips the JVM start.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import IO

from expert.exercises.catalog import Exercise
from expert.exercises.verdict import Verdict
from expert.runtime.config import local_child_environment
from expert.runtime.timing import Stopwatch
from expert.runtime.workdir import work_root

WORKER_START_S = 30
"""Allowance for a new worker to say it is ready (its imports; Spark starts inside a check's own limit)."""


class CheckWorker:
    """A worker process kept for its checks; `check()` restarts it if the previous check timed out or it died."""

    def __init__(self, *, time_limit_s: float | None = None, single_check: bool = False) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.time_limit_s = time_limit_s
        """Overrides every exercise's own limit (tests of the time limit itself use a short one)."""
        self.single_check = single_check
        """The worker will run one check and exit (`expert check ID`): a JVM it starts is tuned for a short life."""
        self.log_path = work_root() / "exercises" / "worker.log"

    def __enter__(self) -> CheckWorker:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _start(self) -> subprocess.Popen[str]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**local_child_environment(os.environ), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("a") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "expert.exercises.worker", *(["--single-check"] if self.single_check else [])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
                start_new_session=True,
            )

    def check(self, exercise: Exercise, file: Path) -> Verdict:
        """Run `exercise`'s check on `file` within its time limit."""
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()
            assert self._process.stdout is not None
            if _read_line(self._process.stdout, WORKER_START_S) is None:
                self.close()
                return self._died(exercise, Stopwatch())
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        watch = Stopwatch()
        try:
            process.stdin.write(json.dumps({"id": exercise.id, "file": str(file)}) + "\n")
            process.stdin.flush()
        except BrokenPipeError:
            self.close()
            return self._died(exercise, watch)
        limit = self.time_limit_s if self.time_limit_s is not None else exercise.timeout_s
        line = _read_line(process.stdout, limit)
        if line is None:
            alive = process.poll() is None
            self.close()
            if alive:
                return Verdict(
                    exercise.id,
                    "failed",
                    f"the check did not finish within its time limit of {limit:.0f} s "
                    "(an endless loop, or a query that never ends?); the check process was stopped "
                    "and the next check starts a fresh one" + _server_note(exercise),
                    invariant="time limit",
                    where=str(file),
                    seconds=watch.stop(),
                )
            return self._died(exercise, watch)
        return Verdict.from_dict(json.loads(line))

    def _died(self, exercise: Exercise, watch: Stopwatch) -> Verdict:
        return Verdict(
            exercise.id,
            "failed",
            f"the check process exited before answering (see {self.log_path}); the next check starts a fresh one",
            invariant="check process died",
            seconds=watch.stop(),
        )

    def close(self) -> None:
        """Stop the worker and everything it started (its Spark JVM is in its process group)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                if process.stdin:
                    process.stdin.close()
                process.wait(timeout=0.5)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                pass
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        else:
            _kill_group_quietly(process.pid)


def _server_note(exercise: Exercise) -> str:
    """A Spark query the stopped check left on `expert up`'s server runs on there: say how to end it."""
    if exercise.engine != "spark":
        return ""
    from expert.runtime.spark import warm_server_url

    if warm_server_url() is None:
        return ""
    return (
        "; its Spark work ran on the warm server `expert up` keeps, which may still be running the query: "
        "`expert down` stops the server (and `expert up` starts a fresh one)"
    )


def _kill_group_quietly(pgid: int) -> None:
    """A worker that exited may leave its JVM behind in its group: stop it too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _read_line(stream: IO[str], timeout_s: float) -> str | None:
    """One line from `stream`, or None if none arrives in time or the stream ends."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        if not selector.select(timeout_s):
            return None
        line = stream.readline()
        return line or None
    finally:
        selector.close()


def check_once(exercise: Exercise, file: Path | None = None) -> Verdict:
    """One check in a fresh worker (what `expert check ID` does)."""
    with CheckWorker(single_check=True) as worker:
        return worker.check(exercise, file or exercise.path)


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
