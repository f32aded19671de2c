"""Workdirs: one per pattern, under one root, cleared at start, never outside the root."""

from __future__ import annotations

import pytest

from expert.runtime.errors import ExpertError
from expert.runtime.workdir import pattern_workdir, work_root


def test_workdir_is_under_the_root_and_cleared_on_each_run() -> None:
    first = pattern_workdir("demo", "01_example")
    (first / "leftover.txt").write_text("from the previous run")
    second = pattern_workdir("demo", "01_example")
    assert second == first
    assert work_root() in second.parents
    assert list(second.iterdir()) == []


def test_workdirs_of_different_patterns_are_isolated() -> None:
    a = pattern_workdir("demo", "01_a")
    b = pattern_workdir("demo", "02_b")
    (a / "table").mkdir()
    assert not (b / "table").exists()


def test_workdir_can_be_kept_without_clearing() -> None:
    path = pattern_workdir("demo", "03_keep")
    (path / "state").write_text("kept")
    assert (pattern_workdir("demo", "03_keep", clear=False) / "state").read_text() == "kept"


@pytest.mark.parametrize("stem", ["../../escape", "/etc"])
def test_workdir_refuses_paths_outside_the_root(stem: str) -> None:
    with pytest.raises(ExpertError, match="not under"):
        pattern_workdir("demo", stem)


# --- One run per workdir (issue 17.5) --------------------------------------------------------

HOLD_LOCK = """
import sys, time
from expert.runtime.workdir import workdir_lock
with workdir_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold_in_another_process(track: str, stem: str):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from expert import PROJECT_ROOT

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, track, stem],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_holder_of_a_workdir_stops_at_once_and_the_lock_is_released_on_exit() -> None:
    from expert.runtime.workdir import workdir_lock

    with workdir_lock("demo", "04_locked") as path:
        assert path == work_root() / "demo" / "04_locked"
        with pytest.raises(ExpertError, match=r"another run is using .*04_locked"), workdir_lock("demo", "04_locked"):
            pass
    with workdir_lock("demo", "04_locked"):
        pass  # released when the first run ended


def test_a_killed_run_leaves_no_stale_lock() -> None:
    import signal

    from expert.runtime.workdir import workdir_lock

    holder = _hold_in_another_process("demo", "05_killed")
    try:
        with pytest.raises(ExpertError, match="another run is using"), workdir_lock("demo", "05_killed"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    with workdir_lock("demo", "05_killed"):
        pass


def test_a_second_run_of_a_pattern_stops_at_once_without_touching_the_first_runs_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import time

    from expert.runtime.pattern import REPORTS, load_module, select_patterns

    (meta,) = select_patterns("snowflake/02")
    workdir = work_root() / meta.track / meta.stem
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "first-run-state.txt").write_text("the running pattern's file")
    holder = _hold_in_another_process(meta.track, meta.stem)
    try:
        started = time.monotonic()
        code = load_module(meta).main(["--quiet"])
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert code == 2 and elapsed < 5
    assert REPORTS[-1].error.startswith(f"another run is using {workdir}")
    assert "another run is using" in capsys.readouterr().err
    assert (workdir / "first-run-state.txt").read_text() == "the running pattern's file"
