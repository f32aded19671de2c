"""The unit-test gate of a release: a pytest selection in a fresh interpreter, as CI's test job runs it.

Why: a release must not be deployed when its unit tests fail, and the tests must run the way CI
runs them (a new process, no state from the caller) or the gate proves less than it claims. The
gate starts first and runs while the definitions are validated; nothing is deployed until it has
passed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from expert.runtime.timing import Stopwatch


@dataclass(frozen=True)
class GateResult:
    """pytest's verdict: exit code, counts and its closing summary line."""

    exit_code: int
    passed: int
    failed: int
    seconds: float
    summary: str


@dataclass
class RunningGate:
    process: subprocess.Popen[str]
    watch: Stopwatch


def start_unit_gate(tests: Sequence[str], project: Path, work_root: Path) -> RunningGate:
    """Start `pytest -q <tests>` in `project`, its runs' state under `work_root`."""
    env = {**os.environ, "EXPERT_WORK_ROOT": str(work_root)}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return RunningGate(process, Stopwatch())


def finish_unit_gate(gate: RunningGate) -> GateResult:
    """Wait for the gate and read pytest's closing line."""
    stdout, _ = gate.process.communicate(timeout=300)
    seconds = gate.watch.stop()
    lines = stdout.splitlines()
    summary = next((line for line in reversed(lines) if " passed" in line or " failed" in line), stdout.strip()[-200:])
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|error)", summary)}
    return GateResult(
        gate.process.returncode,
        counts.get("passed", 0),
        counts.get("failed", 0) + counts.get("error", 0),
        seconds,
        summary.strip("= "),
    )
