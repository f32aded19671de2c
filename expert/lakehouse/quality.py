"""Data-quality expectations in the three Lakeflow/DLT flavours, with a quarantine.

Why: a silver table is a promise to every consumer. Each expectation is a named SQL condition
that a good row satisfies, with one of three actions, as in Databricks' declarative pipelines:

- `warn` (`@dlt.expect`): keep the row, count the violation (a metric, not a blocker);
- `drop` (`@dlt.expect_or_drop`): keep the row out of silver; here it goes to a quarantine table
  with the name of the rule it failed, so nothing is silently lost;
- `fail` (`@dlt.expect_or_fail`): stop the update before anything is written.

Evaluation order, chosen explicitly: drop rules run on every row; warn and fail rules run on the
rows that survive them (they describe the data being published). A condition that evaluates to
NULL counts as a failure (unlike a SQL CHECK constraint), so write `col IS NOT NULL` where needed.
All rule counts of a batch come from one aggregation (one Spark job).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

FAILED_RULES = "_failed_rules"


class Action(StrEnum):
    WARN = "warn"
    DROP = "drop"
    FAIL = "fail"


@dataclass(frozen=True)
class Expectation:
    """A named condition that good rows satisfy, and what to do with a row that does not."""

    name: str
    condition: str
    action: Action

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"expectation names are identifiers (they label metrics): {self.name!r}")


class ExpectationFailedError(Exception):
    """A `fail` expectation was violated: the batch was not written."""

    def __init__(self, table: str, rule: str, rows: int) -> None:
        super().__init__(f"{table}: expectation {rule!r} failed on {rows} row(s); the update was stopped")
        self.table = table
        self.rule = rule
        self.rows = rows


@dataclass
class QualityCounts:
    """Violations per rule for one table, summed over the batches processed."""

    rows_in: int = 0
    violations: dict[str, int] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        """Rows sent to quarantine (each counted once, under its first failing drop rule)."""
        return sum(n for rule, n in self.violations.items() if self.actions[rule] is Action.DROP)

    @property
    def warned(self) -> int:
        return sum(n for rule, n in self.violations.items() if self.actions[rule] is Action.WARN)

    def add(self, other: QualityCounts) -> None:
        self.rows_in += other.rows_in
        for rule, n in other.violations.items():
            self.violations[rule] = self.violations.get(rule, 0) + n
            self.actions[rule] = other.actions[rule]


@dataclass(frozen=True)
class QualitySplit:
    """One batch after its expectations: the rows to publish, the rows to quarantine, the counts."""

    valid: DataFrame
    quarantined: DataFrame
    counts: QualityCounts


def _failed(condition: str) -> str:
    return f"NOT coalesce(({condition}), false)"


def apply_expectations(df: DataFrame, table: str, expectations: Sequence[Expectation]) -> QualitySplit:
    """Evaluate every expectation on a (batch) DataFrame; raise `ExpectationFailedError` on a `fail` rule.

    Drop-rule counts attribute each quarantined row to its FIRST failing drop rule (in the order
    given), so the per-rule counts add up to the quarantined rows. The quarantined rows keep every
    column plus `_failed_rules` (all drop rules they failed, first one first).
    """
    from pyspark.sql import functions as F

    drops = [e for e in expectations if e.action is Action.DROP]
    checks = [e for e in expectations if e.action is not Action.DROP]
    failed_drops = F.filter(
        F.array(*[F.when(F.expr(_failed(e.condition)), F.lit(e.name)) for e in drops]) if drops else F.array(),
        lambda x: x.isNotNull(),
    )
    tagged = df.withColumn(FAILED_RULES, failed_drops.cast("array<string>"))
    passed = F.size(F.col(FAILED_RULES)) == 0
    aggregates = [F.count(F.lit(1)).alias("_rows")]
    aggregates += [F.sum(F.when(F.get(FAILED_RULES, 0) == e.name, 1).otherwise(0)).alias(e.name) for e in drops]
    aggregates += [F.sum(F.when(passed & F.expr(_failed(e.condition)), 1).otherwise(0)).alias(e.name) for e in checks]
    row = tagged.agg(*aggregates).first()
    assert row is not None
    counts = QualityCounts(
        rows_in=int(row["_rows"]),
        violations={e.name: int(row[e.name] or 0) for e in expectations},
        actions={e.name: e.action for e in expectations},
    )
    for expectation in checks:
        if expectation.action is Action.FAIL and counts.violations[expectation.name]:
            raise ExpectationFailedError(table, expectation.name, counts.violations[expectation.name])
    return QualitySplit(
        valid=tagged.where(passed).drop(FAILED_RULES),
        quarantined=tagged.where(~passed),
        counts=counts,
    )
