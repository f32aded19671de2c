"""What a check receives: a seed the starter does not show, a fresh workdir, the shared engines.

Why hidden seeds: a check must not be passable by returning the number a pattern printed. Each
exercise gets its own seed (derived from its id and a course salt), and checks that count things
run at two sizes, so a hard-coded figure cannot match both.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from expert.runtime.workdir import pattern_workdir, work_root

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from expert.runtime.snowflake import SnowflakeSession

SEED_SALT = "lakehouse-expert-patterns/exercises"

_built_templates: set[Path] = set()
"""Template directories this process built (`CheckContext.prepared`): only these are copied."""


def hidden_seed(exercise_id: str, variant: int = 0) -> int:
    """A stable seed per exercise and variant, not shown anywhere a learner edits."""
    digest = hashlib.sha256(f"{SEED_SALT}:{exercise_id}:{variant}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 1_000_000 + 1_000


@dataclass
class CheckContext:
    """One check's state; `spark` starts (or reuses) the worker's session on first use."""

    exercise_id: str
    spark_features: tuple[str, ...] = ()
    short_lived: bool = False
    """The process runs this one check and exits (`expert check ID`): a local JVM it starts uses the quick compiler."""
    _workdir: Path | None = field(default=None, repr=False)

    def seed(self, variant: int = 0) -> int:
        return hidden_seed(self.exercise_id, variant)

    @property
    def workdir(self) -> Path:
        """`.work/exercises/<id>/`, emptied at the start of each check."""
        if self._workdir is None:
            self._workdir = pattern_workdir("exercises", re.sub(r"[^A-Za-z0-9]+", "_", self.exercise_id))
        return self._workdir

    def prepared(self, name: str, build: Callable[[Path], None]) -> Path:
        """`workdir/name`, holding what `build(directory)` writes: built once per worker, copied after that.

        Why: watch mode re-checks the same exercise on every save, and some checks write their input
        Delta tables before the learner's code runs (databricks/01.3: three commits and a MERGE). The
        inputs depend only on the hidden seed, so a worker that stays builds them once in a template
        directory and copies the files for each later check. A path-based Delta table is its
        directory (its log names data files by relative path), so the copy is the same table at the
        same versions, with the commit files' modification times kept. A template is used only by the
        process that built it: a new worker, which may run changed code, builds its own. A
        short-lived process (`expert check ID`) builds straight into the workdir.
        """
        target = self.workdir / name
        if self.short_lived:
            build(target)
            return target
        template = _template_root() / str(os.getpid()) / self.workdir.name / name
        if template not in _built_templates or not template.is_dir():  # `.work` may be cleared under a worker
            _forget_dead_templates()
            shutil.rmtree(template, ignore_errors=True)
            template.parent.mkdir(parents=True, exist_ok=True)
            build(template)
            _built_templates.add(template)
        shutil.copytree(template, target)  # copy2: modification times kept
        return target

    @property
    def spark(self) -> SparkSession:
        from expert.runtime.spark import get_spark

        return get_spark(self.spark_features, short_lived=self.short_lived)

    @contextlib.contextmanager
    def snowflake(self, database: str = "EXERCISE", schema: str = "PUBLIC") -> Iterator[SnowflakeSession]:
        """A local Snowflake session (fakesnow) whose databases live in this check's workdir."""
        from expert.runtime.config import SNOWFLAKE, resolve_service
        from expert.runtime.snowflake import snowflake_session

        with snowflake_session(
            resolve_service(SNOWFLAKE, {}), db_path=self.workdir / "snowflake", database=database, schema=schema
        ) as session:
            yield session


def _template_root() -> Path:
    return work_root() / "exercises" / "_templates"


def _forget_dead_templates() -> None:
    """Remove the templates of workers that have exited (one directory per process id)."""
    root = _template_root()
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and not _alive(int(entry.name)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
