"""Measure a data product against its contract in one pass: rows, rule metrics, nulls, PII, freshness.

Why one aggregation: every gate needs numbers from the same data. One `agg` computes the row
count, nulls per column, every ODCS library metric (`nullValues`, `missingValues`,
`invalidValues`, `duplicateValues`, `rowCount`), per string column how many values look like an
email, a phone number or an IPv4 address, the newest value of the freshness column, and an
order-independent content fingerprint (sum of a 64-bit hash per row). A SQL quality rule adds one
query each (`{object}` is the candidate's view).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import TYPE_CHECKING, Any

from expert.runtime.contracts import DataContract, QualityRule
from expert.runtime.errors import ExpertError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PII_VALUE_PATTERNS = {
    "email address": r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$",
    "phone number": r"^\+?[0-9][0-9 ().-]{6,}[0-9]$",
    "IPv4 address": r"^(\d{1,3}\.){3}\d{1,3}$",
}
PII_NAME = re.compile(r"(^|_)(first|last|full|middle|given|family)_?name$|birth|^dob$|email|phone|ssn|passport|address")
PII_MATCH_SHARE = 0.5
"""A string column is personal data when at least half its values match a PII pattern."""


@dataclass(frozen=True)
class Profile:
    """Everything the gates need from the data, measured in one pass (plus one query per SQL rule)."""

    rows: int
    rule_values: Mapping[str, float]
    nulls: Mapping[str, int]
    pii_findings: Mapping[str, str]
    newest: datetime | None
    fingerprint: str


def profile_candidate(spark: SparkSession, df: DataFrame, contract: DataContract, view: str) -> Profile:
    """One aggregation for counts, quality metrics, PII patterns, freshness and a content fingerprint."""
    from pyspark.sql import functions as F

    exprs = [F.count(F.lit(1)).alias("rows")]
    exprs += [F.sum(F.col(c.name).isNull().cast("long")).alias(f"nulls__{c.name}") for c in contract.columns]
    for rule in contract.quality_rules:
        metric = metric_expression(rule)
        if metric is not None:
            exprs.append(metric.alias(f"rule__{rule.id}"))
    strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
    for name in strings:
        exprs.append(F.count(F.col(name)).alias(f"present__{name}"))
        for i, pattern in enumerate(PII_VALUE_PATTERNS.values()):
            exprs.append(F.sum(F.col(name).rlike(pattern).cast("long")).alias(f"pii{i}__{name}"))
    latency = contract.latency
    if latency:
        exprs.append(F.max(latency.column).alias("newest"))
    exprs.append(F.sum(F.xxhash64(*df.columns).cast("decimal(38,0)")).alias("fingerprint"))
    row = df.agg(*exprs).first().asDict()
    rows = int(row["rows"])
    return Profile(
        rows=rows,
        rule_values=rule_values(spark, contract, row, view),
        nulls={c.name: int(row[f"nulls__{c.name}"] or 0) for c in contract.columns},
        pii_findings=pii_findings(df, row, strings),
        newest=row.get("newest"),
        fingerprint=f"{row['fingerprint'] or 0}:{rows}",
    )


def rule_values(spark: SparkSession, contract: DataContract, row: Mapping[str, Any], view: str) -> dict[str, float]:
    """Each quality rule's measured value: from the profile row, or its own SQL query (`{object}` = view)."""
    rows = int(row["rows"])
    values: dict[str, float] = {}
    for rule in contract.quality_rules:
        if rule.query:
            query = rule.query.replace("{object}", view).replace("{property}", rule.column or "")
            value = float(spark.sql(query).first()[0])
        elif rule.metric == "rowCount":
            value = float(rows)
        else:
            value = float(row[f"rule__{rule.id}"] or 0)
        if rule.unit == "percent" and rule.metric != "rowCount":
            value = 100.0 * value / rows if rows else 0.0
        values[rule.id] = value
    return values


def pii_findings(df: DataFrame, row: Mapping[str, Any], strings: Sequence[str]) -> dict[str, str]:
    """Columns that hold personal data, judged by their values (patterns) or, failing that, their names."""
    findings: dict[str, str] = {}
    for name in df.columns:
        present = int(row.get(f"present__{name}") or 0) if name in strings else 0
        for i, label in enumerate(PII_VALUE_PATTERNS):
            share = int(row[f"pii{i}__{name}"] or 0) / present if present else 0.0
            if share >= PII_MATCH_SHARE:
                findings[name] = f"{share:.0%} of values look like a {label}"
        if name not in findings and PII_NAME.search(name):
            findings[name] = "the column name says personal data"
    return findings


def metric_expression(rule: QualityRule) -> Any:
    """The Spark aggregate that measures an ODCS library metric (None for SQL rules and rowCount)."""
    from pyspark.sql import functions as F

    if rule.query or rule.metric == "rowCount":
        return None
    args = rule.arguments
    if rule.metric == "duplicateValues":
        cols = [rule.column] if rule.column else list(args.get("properties", []))
        complete = reduce(operator.and_, [F.col(c).isNotNull() for c in cols])
        return F.count(F.when(complete, 1)) - F.count_distinct(*[F.col(c) for c in cols])
    col = F.col(rule.column or "")
    if rule.metric == "nullValues":
        return F.sum(col.isNull().cast("long"))
    if rule.metric == "missingValues":
        missing = [v for v in args.get("missingValues", [None]) if v is not None]
        return F.sum((col.isNull() | col.isin(missing)).cast("long"))
    if rule.metric == "invalidValues":
        if "validValues" in args:
            return F.sum((col.isNotNull() & ~col.isin(list(args["validValues"]))).cast("long"))
        return F.sum((col.isNotNull() & ~col.rlike(str(args["pattern"]))).cast("long"))
    raise ExpertError(f"quality rule {rule.id}: metric {rule.metric!r} is not supported", "use an ODCS library metric")
