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
