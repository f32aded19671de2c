"""Publish a staged table atomically, verify it live, and roll it back with RESTORE: the "P" of WAP.

Why this shape (blue/green on one Delta table): consumers read one stable table. The version they
read now is "blue"; the release writes "green" as the next version in ONE commit (`CREATE OR
REPLACE TABLE ... AS SELECT` from the audited staged table), so a reader sees the old table or
the new one, never a mix. Blue stays readable by time travel, which makes the rollback a single
`RESTORE TABLE ... TO VERSION AS OF <blue>`: again one commit, again atomic, no data copied back
by hand. Every decision goes to a release log (a Delta table) so "which release is live, and
which version is it?" has one answer.

On Databricks the swap is usually `CREATE OR REPLACE TABLE prod DEEP CLONE staging` (an
incremental copy that also carries table properties). Delta Lake 4.4 open source refuses both
DEEP CLONE and a CLONE onto a non-empty table (measured: DELTA_UNSUPPORTED_NON_EMPTY_CLONE), so
this module writes the green version with REPLACE TABLE AS SELECT: the same one-commit semantics.

Delta commits are per table: a release that touches several tables records each table's blue
version and restores every one of them if any verification fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from expert.lakehouse.delta_ops import delta_table, is_delta_table, latest_version

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RELEASE_LOG_SCHEMA = (
    "release STRING, table_name STRING, staged STRING, blue_version BIGINT, green_version BIGINT, "
    "live_version BIGINT, decision STRING, reason STRING, decided_at TIMESTAMP"
)


class Decision(StrEnum):
    """What happened to one table of one release."""

    KEPT = "kept"
    ROLLED_BACK = "rolled back"
    BLOCKED = "blocked"
    ALREADY_LIVE = "already live"


@dataclass(frozen=True)
class Publication:
    """One table of one release made live: the version it replaced (blue) and its own (green)."""

    release: str
    table: str
    staged: str
    live: str
    blue_version: int | None
    green_version: int


@dataclass(frozen=True)
class ReleaseRecord:
    """One row of the release log."""

    release: str
    table: str
    staged: str
    blue_version: int | None
    green_version: int | None
    live_version: int | None
    decision: Decision
    reason: str
    decided_at: datetime


def live_version(spark: SparkSession, location: str) -> int | None:
    """The latest committed version of the Delta table at `location`, or None if there is none."""
    return latest_version(spark, location)


def read_version(spark: SparkSession, location: str, version: int) -> DataFrame:
    return spark.read.format("delta").option("versionAsOf", version).load(location)


def rows_differ(left: DataFrame, right: DataFrame) -> int:
    """Rows in one side but not the other (multiset difference both ways): 0 means same content."""
    return left.exceptAll(right).unionByName(right.exceptAll(left)).count()


def publish(spark: SparkSession, release: str, table: str, staged: str, live: str) -> Publication:
    """Make the audited staged table the live table's next version, in one commit."""
    blue = live_version(spark, live)
    spark.sql(f"CREATE OR REPLACE TABLE {delta_table(live)} USING DELTA AS SELECT * FROM {delta_table(staged)}")
    green = live_version(spark, live)
    assert green is not None
    return Publication(release, table, staged, live, blue, green)


def rollback(spark: SparkSession, publication: Publication) -> int:
    """Put blue back: `RESTORE` to the replaced version (or empty the table if nothing was live).

    Returns the version the restore committed (RESTORE is itself a new version whose content
    equals blue's, so the history keeps the whole story: blue, green, restore).
    """
    if publication.blue_version is None:
        spark.sql(f"DELETE FROM {delta_table(publication.live)}")
    else:
        spark.sql(f"RESTORE TABLE {delta_table(publication.live)} TO VERSION AS OF {publication.blue_version}")
    restored = live_version(spark, publication.live)
    assert restored is not None
    return restored


def restored_to_blue(spark: SparkSession, publication: Publication, restored: int) -> bool:
    """Whether version `restored` holds exactly blue's rows (or nothing, when nothing was live before)."""
    now_live = read_version(spark, publication.live, restored)
    if publication.blue_version is None:
        return now_live.count() == 0
    return rows_differ(now_live, read_version(spark, publication.live, publication.blue_version)) == 0


@dataclass(frozen=True)
class Reconciliation:
    """A business invariant between a live gold table and its ledger (the silver table it sums up)."""

    name: str
    gold_expression: str
    ledger_location: str
    ledger_expression: str
    relative_tolerance: float = 0.0


@dataclass(frozen=True)
class ReconciliationResult:
    name: str
    gold: float
    ledger: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return abs(self.gold - self.ledger) <= self.tolerance * max(abs(self.ledger), 1.0)


def reconcile(
    spark: SparkSession, live: str, version: int, checks: Sequence[Reconciliation]
) -> tuple[ReconciliationResult, ...]:
    """Compare aggregates of the live table (at `version`) with the same totals from their ledgers.

    One aggregation over the live table and one per ledger table, however many checks there are.
    """
    from pyspark.sql import functions as F

    if not checks:
        return ()
    gold = (
        read_version(spark, live, version)
        .agg(*[F.expr(c.gold_expression).alias(f"c{i}") for i, c in enumerate(checks)])
        .first()
    )
    ledger_values: dict[int, float] = {}
    for location in dict.fromkeys(c.ledger_location for c in checks):
        indexed = [(i, c) for i, c in enumerate(checks) if c.ledger_location == location]
        row = (
            spark.read.format("delta")
            .load(location)
            .agg(*[F.expr(c.ledger_expression).alias(f"c{i}") for i, c in indexed])
            .first()
        )
        assert row is not None
        ledger_values.update({i: float(row[f"c{i}"] or 0) for i, _ in indexed})
    assert gold is not None
    return tuple(
        ReconciliationResult(c.name, float(gold[f"c{i}"] or 0), ledger_values[i], c.relative_tolerance)
        for i, c in enumerate(checks)
    )


@dataclass(frozen=True)
class Drift:
    """How far the green version moved from blue on the keys both versions have."""

    common_keys: int
    worst_measure: str
    worst_relative_change: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.worst_relative_change <= self.tolerance


def drift_against_previous(
    spark: SparkSession,
    publication: Publication,
    keys: Sequence[str],
    measures: Sequence[str],
    *,
    tolerance: float,
) -> Drift | None:
    """The largest relative change of any measure between blue and green on common keys.

    History does not change when a release only changes code: the same input must give the same
    numbers for days both versions cover. A release that legitimately restates history raises
    the tolerance explicitly. None when there is no blue version to compare with.
    """
    from pyspark.sql import functions as F

    if publication.blue_version is None:
        return None
    blue = read_version(spark, publication.live, publication.blue_version)
    green = read_version(spark, publication.live, publication.green_version)
    shared = [m for m in measures if m in blue.columns and m in green.columns]
    if not all(k in green.columns for k in keys):
        return Drift(0, "key columns changed", float("inf"), tolerance)
    joined = blue.alias("b").join(green.alias("g"), list(keys), "inner")
    changes = [
        (F.abs(F.col(f"g.{m}") - F.col(f"b.{m}")) / F.greatest(F.abs(F.col(f"b.{m}")), F.lit(1))).alias(m)
        for m in shared
    ]
    row = joined.select(*changes).agg(F.count(F.lit(1)).alias("n"), *[F.max(m).alias(m) for m in shared]).first()
    assert row is not None
    worst = max(shared, key=lambda m: float(row[m] or 0.0)) if shared else "-"
    change = float(row[worst] or 0.0) if shared else 0.0
    return Drift(int(row["n"]), worst, change, tolerance)


def record_decision(
    spark: SparkSession,
    log_location: str,
    *,
    release: str,
    table: str,
    staged: str,
    blue_version: int | None,
    green_version: int | None,
    live_version_now: int | None,
    decision: Decision,
    reason: str,
) -> None:
    """Append one decision to the release log (created on first use)."""
    row = [
        (
            release,
            table,
            staged,
            blue_version,
            green_version,
            live_version_now,
            decision.value,
            reason,
            datetime.now(UTC).replace(tzinfo=None),
        )
    ]
    spark.createDataFrame(row, RELEASE_LOG_SCHEMA).write.format("delta").mode("append").save(log_location)


def read_release_log(spark: SparkSession, log_location: str) -> list[ReleaseRecord]:
    """Every decision, oldest first (empty when nothing was ever released)."""
    if not is_delta_table(spark, log_location):
        return []
    rows = spark.read.format("delta").load(log_location).orderBy("decided_at").collect()
    return [
        ReleaseRecord(
            r["release"],
            r["table_name"],
            r["staged"],
            r["blue_version"],
            r["green_version"],
            r["live_version"],
            Decision(r["decision"]),
            r["reason"],
            r["decided_at"],
        )
        for r in rows
    ]


def live_release(records: Sequence[ReleaseRecord], table: str) -> ReleaseRecord | None:
    """The release whose build is live for `table`: the last one kept (rollbacks restore to it)."""
    kept = [r for r in records if r.table == table and r.decision is Decision.KEPT]
    return kept[-1] if kept else None


@dataclass(frozen=True)
class Verification:
    """Everything checked on a live table after its green version was published."""

    publication: Publication
    rows_differing_from_build: int
    reconciliations: tuple[ReconciliationResult, ...]
    drift: Drift | None

    @property
    def failures(self) -> list[str]:
        reasons = []
        if self.rows_differing_from_build:
            reasons.append(f"{self.rows_differing_from_build} live row(s) differ from the audited build")
        reasons += [
            f"{r.name}: gold {r.gold:,.2f} vs ledger {r.ledger:,.2f}" for r in self.reconciliations if not r.passed
        ]
        if self.drift is not None and not self.drift.passed:
            reasons.append(
                f"drift: {self.drift.worst_measure} moved {self.drift.worst_relative_change:.1%} on "
                f"{self.drift.common_keys} unchanged key(s) (tolerance {self.drift.tolerance:.1%})"
            )
        return reasons

    @property
    def passed(self) -> bool:
        return not self.failures


def verify_publication(
    spark: SparkSession,
    publication: Publication,
    reconciliations: Sequence[Reconciliation],
    keys: Sequence[str],
    measures: Sequence[str],
    *,
    drift_tolerance: float,
) -> Verification:
    """Verify a live table: it holds exactly the audited build, reconciles with its ledger, and
    did not move history beyond `drift_tolerance` compared with the version it replaced."""
    green = read_version(spark, publication.live, publication.green_version)
    staged = spark.read.format("delta").load(publication.staged)
    return Verification(
        publication,
        rows_differ(green, staged),
        reconcile(spark, publication.live, publication.green_version, reconciliations),
        drift_against_previous(spark, publication, keys, measures, tolerance=drift_tolerance),
    )


@dataclass(frozen=True)
class PublishResult:
    """One release of several tables: each table's verification, and what was restored if any failed."""

    verifications: list[Verification]
    restored: dict[str, int]

    @property
    def failures(self) -> list[str]:
        return [f"{v.publication.table}: {reason}" for v in self.verifications for reason in v.failures]


def release_tables(
    spark: SparkSession,
    release: str,
    staged: Mapping[str, str],
    *,
    live: Callable[[str], str],
    verify: Callable[[Publication], Verification],
    log_location: str,
) -> PublishResult:
    """Publish every staged table (blue → green), verify each, and RESTORE all of them if any fails.

    All or nothing across tables: a release whose sales table verifies but whose funnel table does
    not must not leave half of it live. Every table's decision goes to the release log.
    `staged` maps table → staged location; `live(table)` is its live location.
    """
    verifications = [
        verify(publish(spark, release, table, location, live(table))) for table, location in staged.items()
    ]
    failures = [f"{v.publication.table}: {reason}" for v in verifications for reason in v.failures]
    restored: dict[str, int] = {}
    for verification in verifications:
        p = verification.publication
        if failures:
            restored[p.table] = rollback(spark, p)
        record_decision(
            spark,
            log_location,
            release=p.release,
            table=p.table,
            staged=p.staged,
            blue_version=p.blue_version,
            green_version=p.green_version,
            live_version_now=restored.get(p.table, p.green_version),
            decision=Decision.ROLLED_BACK if failures else Decision.KEPT,
            reason="; ".join(failures) or "verified",
        )
    return PublishResult(verifications, restored)


def confirm_already_live(
    spark: SparkSession, release: str, tables: Sequence[str], *, live: Callable[[str], str], log_location: str
) -> dict[str, bool]:
    """Promote a release that is already live: record `ALREADY_LIVE` for its tables and write nothing else.

    A table is already live when the log's last kept release for it is `release` and its live
    version is still the one the log recorded. Returns, for each such table, whether its version is
    unchanged after the check (the tables that are not already live are left out).
    """
    records = read_release_log(spark, log_location)
    unchanged: dict[str, bool] = {}
    for table in tables:
        current = live_version(spark, live(table))
        kept = live_release(records, table)
        last = [r for r in records if r.table == table][-1:]
        if kept is not None and kept.release == release and last and last[0].live_version == current:
            record_decision(
                spark,
                log_location,
                release=release,
                table=table,
                staged=kept.staged,
                blue_version=current,
                green_version=None,
                live_version_now=current,
                decision=Decision.ALREADY_LIVE,
                reason="the live version already holds this release",
            )
            unchanged[table] = live_version(spark, live(table)) == current
    return unchanged
