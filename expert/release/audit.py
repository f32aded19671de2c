"""Audit a staged table against its data contract: the "A" of write-audit-publish.

Why before publishing: a consumer must never see a table that breaks its contract. The staged
build is checked for exactly what the contract promises (deploy/contracts/*.odcs.yaml, Open Data
Contract Standard): the schema (names and Spark types), required columns without nulls, a unique
primary key, the quality rules (library metrics `rowCount`, `nullValues`, `duplicateValues`,
`invalidValues`, and SQL rules) and the freshness SLA. All column metrics come from one
aggregation (one Spark job); each SQL rule is one more query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expert.lakehouse.delta_ops import delta_table, latest_version
from expert.runtime.contracts import DataContract, QualityRule, normalize_type

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession


@dataclass(frozen=True)
class Finding:
    """One contract check: what was measured and what the contract expects."""

    check: str
    passed: bool
    measured: str
    expected: str


@dataclass(frozen=True)
class AuditReport:
    """Every finding of one audit of one Delta table version."""

    contract: str
    location: str
    version: int
    rows: int
    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.findings)

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.passed)


def load_contracts(directory: Path) -> dict[str, DataContract]:
    """Every `*.odcs.yaml` contract in `directory`, keyed by the table it governs."""
    contracts = [DataContract.load(path) for path in sorted(directory.glob("*.odcs.yaml"))]
    return {c.table: c for c in contracts}


def _metric_column(rule: QualityRule, columns: Mapping[str, str]) -> Column | None:
    """The aggregate that measures a column-level library metric (None when it cannot be measured)."""
    from pyspark.sql import functions as F

    if rule.column is None or rule.column not in columns:
        return None
    col = F.col(f"`{rule.column}`")
    if rule.metric in ("nullValues", "missingValues"):
        return F.sum(F.when(col.isNull(), 1).otherwise(0))
    if rule.metric == "duplicateValues":
        return F.count(F.lit(1)) - F.count_distinct(col)
    if rule.metric == "invalidValues":
        valid = list(rule.arguments.get("validValues") or ())
        return F.sum(F.when(col.isNull() | ~col.isin(valid), 1).otherwise(0))
    return None


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return None


def audit_table(spark: SparkSession, location: str, contract: DataContract, *, now: datetime) -> AuditReport:
    """Check the latest version of the Delta table at `location` against `contract`.

    `now` is the clock the freshness SLA is measured against (the job's start time in the cloud;
    the data generator's pinned end of time locally, so runs are reproducible).
    """
    from pyspark.sql import functions as F

    version = latest_version(spark, location) or 0
    df = spark.read.format("delta").option("versionAsOf", version).load(location)
    actual = {f.name: normalize_type(f.dataType.simpleString()) for f in df.schema.fields}
    expected = {c.name: c.physical_type for c in contract.columns}
    findings = [
        Finding(
            "schema",
            actual == expected,
            ", ".join(f"{k} {v}" for k, v in actual.items()),
            ", ".join(f"{k} {v}" for k, v in expected.items()),
        )
    ]

    aggregates: dict[str, Column] = {"rows": F.count(F.lit(1))}
    required = [c.name for c in contract.columns if c.required]
    for name in required:
        if name in actual:
            aggregates[f"null:{name}"] = F.sum(F.when(F.col(f"`{name}`").isNull(), 1).otherwise(0))
    key = list(contract.primary_key)
    if key and all(k in actual for k in key):
        aggregates["key_duplicates"] = F.count(F.lit(1)) - F.count_distinct(*[F.col(f"`{k}`") for k in key])
    for rule in contract.quality_rules:
        measure = _metric_column(rule, actual)
        if measure is not None:
            aggregates[f"rule:{rule.id}"] = measure
    latency = contract.latency
    if latency and latency.column in actual:
        aggregates["newest"] = F.max(F.col(f"`{latency.column}`"))
    row = df.agg(*[expr.alias(name) for name, expr in aggregates.items()]).first()
    assert row is not None
    values = row.asDict()
    rows = int(values["rows"])

    for name in required:
        nulls = values.get(f"null:{name}")
        findings.append(
            Finding(
                f"{name} is never null", nulls == 0, "missing column" if nulls is None else f"{nulls} null", "0 null"
            )
        )
    if key:
        duplicates = values.get("key_duplicates")
        findings.append(
            Finding(
                f"key ({', '.join(key)}) is unique",
                duplicates == 0,
                "missing key column" if duplicates is None else f"{duplicates} duplicate(s)",
                "0 duplicates",
            )
        )
    for rule in contract.quality_rules:
        findings.append(_rule_finding(spark, rule, values, rows, location))
    if latency:
        newest = _as_datetime(values.get("newest"))
        lag = None if newest is None else now - newest
        findings.append(
            Finding(
                f"fresh: newest {latency.column} {latency.text} old",
                lag is not None and lag <= latency.limit,
                "no value" if lag is None else f"{lag.total_seconds() / 3600:.1f} h old",
                f"≤ {latency.limit.total_seconds() / 3600:.0f} h",
            )
        )
    return AuditReport(f"{contract.id}@{contract.version}", location, version, rows, tuple(findings))


def _rule_finding(
    spark: SparkSession, rule: QualityRule, values: Mapping[str, Any], rows: int, location: str
) -> Finding:
    """Measure one quality rule (from the shared aggregation, or its own SQL query) and judge it."""
    if rule.metric == "rowCount":
        value: float | None = float(rows)
    elif rule.query:
        sql = rule.query.replace("{object}", delta_table(location))
        try:
            result = spark.sql(sql).first()
        except Exception as exc:
            return Finding(rule.id, False, f"query failed: {str(exc).splitlines()[0][:120]}", rule.expectation)
        value = None if result is None or result[0] is None else float(result[0])
    else:
        measured = values.get(f"rule:{rule.id}")
        value = None if measured is None else float(measured)
    if value is None:
        return Finding(rule.id, False, "not measurable (column missing)", rule.expectation)
    if rule.unit == "percent" and rule.metric != "rowCount":
        value = 100.0 * value / rows if rows else 0.0
    shown = f"{value:g}%" if rule.unit == "percent" else f"{value:g}"
    return Finding(rule.id, rule.passes(value), shown, rule.expectation)
