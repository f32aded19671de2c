"""One directory per pattern run, under one project-local root, cleared at the start of each run.

Why: a pattern that writes to a shared `/tmp/delta-table` gives different answers on its second
run. Owning (and clearing) a directory derived from the script's name makes every run start from
the same state, and keeps everything a run writes in one git-ignored place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from expert import PROJECT_ROOT
from expert.runtime.errors import ExpertError

WORK_ROOT_ENV = "EXPERT_WORK_ROOT"


def work_root() -> Path:
    """`.work/` in the repository, or `EXPERT_WORK_ROOT` (tests give each session its own)."""
    return Path(os.environ.get(WORK_ROOT_ENV) or PROJECT_ROOT / ".work").resolve()


def shared_dir(name: str) -> Path:
    """A directory shared across runs (engine logs, the Spark warehouse, a broker's data)."""
    path = work_root() / "_shared" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def pattern_workdir(track: str, stem: str, *, clear: bool = True) -> Path:
    """The workdir of one pattern, e.g. `.work/databricks/01_production_pipelines/`.

    It is emptied first when `clear` is true, so a rerun starts from nothing. Refuses any path
    that would resolve outside the work root (a defence against a bad track or stem).
    """
    root = work_root()
    path = (root / track / stem).resolve()
    if root not in path.parents:
        raise ExpertError(
            f"refusing to use {path} as a workdir: it is not under {root}",
            "pattern track and file names must be plain names",
        )
    if clear and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
