"""The check worker: a process that runs checks on request and keeps its Spark session warm.

Why a separate process: a learner's code may loop forever or wedge a Spark job. The CLI gives
each check a time limit and, past it, kills this process (and the JVM it started) and starts a
fresh one, so a bad attempt never leaves a session, a workdir or a broker that breaks the next
check. Between requests the process stays up, so watch mode and `check --all` pay for Spark once.

Protocol: one JSON request per line on stdin (`{"id": ..., "file": ...}`), one JSON verdict per
line on the original stdout. Everything else the check or the learner prints goes to stderr.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import sys
import threading
import traceback
from pathlib import Path

from expert.exercises.catalog import Exercise, find, spark_features
from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import BadInputError, CheckFailedError, Verdict
from expert.runtime.errors import ExpertError
from expert.runtime.timing import Stopwatch


def run_check(exercise: Exercise, file: Path, *, short_lived: bool = False) -> Verdict:
    """Run one exercise's check on `file` in this process and say what it proved.

    `short_lived`: this process runs this one check and exits, so a Spark session it starts is tuned for that.
    """
    watch = Stopwatch()
    module_name, _, function_name = exercise.check.partition(":")
    check = getattr(importlib.import_module(module_name), function_name)
    try:
        learner = LearnerCode(file)
        evidence = check(learner, CheckContext(exercise.id, spark_features(), short_lived=short_lived))
        return Verdict(exercise.id, "passed", str(evidence), seconds=watch.stop())
    except BadInputError as exc:
        return Verdict(exercise.id, "bad-input", exc.message, where=exc.where, seconds=watch.stop())
    except CheckFailedError as exc:
        cause = exc.__cause__ or exc
        return Verdict(
            exercise.id,
            "failed",
            exc.detail,
            invariant=exc.invariant,
            where=exc.where,
            seconds=watch.stop(),
            traceback="".join(traceback.format_exception(cause)),
        )
    except ExpertError as exc:
        return Verdict(exercise.id, "bad-input", exc.message, where=exc.fix, seconds=watch.stop())


def serve(*, short_lived: bool = False) -> None:
    """Answer check requests until stdin closes; `short_lived`: the CLI will ask for one check only."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    protocol.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            verdict = run_check(find(request["id"]), Path(request["file"]), short_lived=short_lived)
        except Exception as exc:
            verdict = Verdict(
                request.get("id", "?"),
                "failed",
                f"the checker itself failed: {type(exc).__name__}: {exc}",
                invariant="checker error (please report it)",
                traceback=traceback.format_exc(),
            )
        protocol.write(json.dumps(verdict.as_dict()) + "\n")


def exit_without_teardown() -> None:
    """Exit as a normal exit would, minus the interpreter's module teardown.

    Why: from the last verdict to the process's end took 0.35 s with a normal exit after a
    Snowflake check (0.015 s this way), a tenth of its 3 s budget, for memory the OS frees anyway.
    What a normal exit runs before its teardown still runs, in the same order: the threading
    shutdown (non-daemon threads joined, thread pools' queued work done, such as Spark Connect's
    release calls) and the exit handlers (learners' own, logging's flush, temporary directories'
    removal). Skipped: finalizers (`__del__`) of objects still alive at exit.
    """
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    serve(short_lived="--single-check" in sys.argv[1:])
    exit_without_teardown()
