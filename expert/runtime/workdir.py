"""One directory per pattern run, under one project-local root, cleared at the start of each run.

Why: a pattern that writes to a shared `/tmp/delta-table` gives different answers on its second
run. Owning (and clearing) a directory derived from the script's name makes every run start from
the same state, and keeps everything a run writes in one git-ignored place. Owning it means one run
at a time: two runs of one pattern started together would clear each other's files, so a run holds
`workdir_lock` (an `fcntl.flock` on a file beside the workdir) for its whole life. The kernel
releases the lock when the process exits however it exits, so a killed run leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from expert import PROJECT_ROOT
from expert.runtime.errors import ExpertError

WORK_ROOT_ENV = "EXPERT_WORK_ROOT"


def work_root() -> Path:
    """`.work/` in the repository, or `EXPERT_WORK_ROOT` (tests give each session its own)."""
    return Path(os.environ.get(WORK_ROOT_ENV) or PROJECT_ROOT / ".work").resolve()


def cache_dir() -> Path:
    """`.cache/` in the repository (or EXPERT_CACHE_DIR): what later runs reuse (jar lists, the JVM class archive)."""
    path = Path(os.environ.get("EXPERT_CACHE_DIR") or PROJECT_ROOT / ".cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_dir(name: str) -> Path:
    """A directory shared across runs (engine logs, the Spark warehouse, a broker's data)."""
    path = work_root() / "_shared" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _workdir_path(track: str, stem: str) -> Path:
    """`<work root>/<track>/<stem>`, refusing any path that would resolve outside the work root."""
    root = work_root()
    path = (root / track / stem).resolve()
    if root not in path.parents:
        raise ExpertError(
            f"refusing to use {path} as a workdir: it is not under {root}",
            "pattern track and file names must be plain names",
        )
    return path


@contextlib.contextmanager
def workdir_lock(track: str, stem: str) -> Iterator[Path]:
    """Hold the workdir of one pattern for a run; another holder means another run: stop at once.

    The lock file is `<track>/.<stem>.lock`, beside the workdir (clearing the workdir never
    removes it). Yields the workdir's path.
    """
    path = _workdir_path(track, stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = path.parent / f".{stem}.lock"
    with lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExpertError(
                f"another run is using {path} (it holds {lock_file})",
                "wait for that run to finish (or stop it), then rerun; two runs of one pattern would "
                "clear each other's files. To run two at once, give one its own EXPERT_WORK_ROOT",
            ) from None
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_private_file(path: Path, data: bytes) -> Path:
    """Write a credential file readable by its owner only, from the first byte (mode 0600 at
    creation, not a `chmod` after the secret is already on disk for anyone to read)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return path


def pattern_workdir(track: str, stem: str, *, clear: bool = True) -> Path:
    """The workdir of one pattern, e.g. `.work/databricks/01_production_pipelines/`.

    It is emptied first when `clear` is true, so a rerun starts from nothing. Refuses any path
    that would resolve outside the work root (a defence against a bad track or stem).
    """
    path = _workdir_path(track, stem)
    if clear and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
