"""What a check receives: a seed the starter does not show, a fresh workdir, the shared engines.

Why hidden seeds: a check must not be passable by returning the number a pattern printed. Each
exercise gets its own seed (derived from its id and a course salt), and checks that count things
run at two sizes, so a hard-coded figure cannot match both.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from expert.runtime.workdir import pattern_workdir

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from expert.runtime.snowflake import SnowflakeSession

SEED_SALT = "lakehouse-expert-patterns/exercises"


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
