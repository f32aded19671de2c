"""Every exercise, as data: `exercises/info.toml`, the starters the learner edits, the solutions.

Why data: an instructor's script, `expert exercises --json` and the dev check all read one list,
as rustlings reads its `info.toml`. A starter's pristine content is known by its SHA-256 (kept in
the metadata), so `expert exercises` can tell "not started" from "edited", and `expert reset`
can find the pristine version in git history even after the learner committed their work.
"""

from __future__ import annotations

import hashlib
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from expert import PROJECT_ROOT
from expert.runtime.errors import ExpertError
from expert.runtime.pattern import curriculum

INFO_FILE = PROJECT_ROOT / "exercises" / "info.toml"
ENGINES = ("snowflake", "spark", "python")


@dataclass(frozen=True)
class Exercise:
    """One exercise: the file the learner edits, its check, its hint and its reference solution."""

    id: str
    pattern: str
    title: str
    file: str
    solution: str
    check: str
    engine: str
    minutes: int
    timeout_s: int
    hint: str
    task: str
    proves: tuple[str, ...]
    spark_features: tuple[str, ...]
    starter_sha256: str

    @property
    def path(self) -> Path:
        return PROJECT_ROOT / self.file

    @property
    def solution_path(self) -> Path:
        return PROJECT_ROOT / self.solution

    @property
    def number(self) -> int:
        return int(self.id.rsplit(".", 1)[1])

    def is_pristine(self) -> bool:
        """The learner's file is still the starter as shipped."""
        return self.path.is_file() and file_sha256(self.path) == self.starter_sha256


def prose(text: str) -> str:
    """TOML multi-line text as the paragraphs it means: lines joined, blank lines kept."""
    return "\n\n".join(" ".join(p.split()) for p in text.strip().split("\n\n"))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@cache
def exercises() -> tuple[Exercise, ...]:
    """Every exercise, in curriculum order (pattern order, then number)."""
    data = tomllib.loads(INFO_FILE.read_text())
    order = {m.id: i for i, m in enumerate(curriculum())}
    items = [
        Exercise(
            id=e["id"],
            pattern=e["pattern"],
            title=e["title"],
            file=e["file"],
            solution=e["solution"],
            check=e["check"],
            engine=e["engine"],
            minutes=int(e["minutes"]),
            timeout_s=int(e.get("timeout_s", 120 if e["engine"] == "spark" else 30)),
            hint=prose(e["hint"]),
            task=prose(e["task"]),
            proves=tuple(e.get("proves", ())),
            spark_features=tuple(e.get("spark_features", ())),
            starter_sha256=e["starter_sha256"],
        )
        for e in data["exercise"]
    ]
    return tuple(sorted(items, key=lambda x: (order.get(x.pattern, len(order)), x.number)))


def spark_features() -> tuple[str, ...]:
    """Every Spark connector some exercise needs: a worker starts Spark once, with all of them."""
    return tuple(sorted({f for e in exercises() for f in e.spark_features}))


def find(exercise_id: str) -> Exercise:
    """One exercise by id (`snowflake/01.2`); an unknown id is a user error naming the known ones."""
    wanted = exercise_id.strip()
    for exercise in exercises():
        if exercise.id == wanted:
            return exercise
    near = [e.id for e in exercises() if e.pattern == wanted.split(".")[0]]
    known = ", ".join(near) if near else ", ".join(e.id for e in exercises())
    raise ExpertError(f"unknown exercise {wanted!r}", f"choose one of: {known} (see `expert exercises`)")


def pristine_starter(exercise: Exercise) -> bytes:
    """The starter as shipped, from git history: the newest committed version with the starter's hash."""
    try:
        revisions = subprocess.run(
            ["git", "log", "--format=%H", "--", exercise.file],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ExpertError(
            f"cannot read the history of {exercise.file}: {exc}",
            "reset needs the repository's git history: run it inside your clone",
        ) from None
    for revision in revisions:
        blob = subprocess.run(
            ["git", "show", f"{revision}:{exercise.file}"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            timeout=30,
            check=False,
        )
        if blob.returncode == 0 and hashlib.sha256(blob.stdout).hexdigest() == exercise.starter_sha256:
            return blob.stdout
    raise ExpertError(
        f"no commit holds the original starter of {exercise.id} ({exercise.file})",
        "fetch the course repository's history (git fetch), or copy the file from a fresh clone",
    )
