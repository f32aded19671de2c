"""A release's results as the rows a learner reads: audit findings, verifications, table history.

Why a module: the promotion pattern decides from `AuditReport` and `Verification` objects; turning
them into short table rows is presentation, the same for every release, and kept out of the lesson.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from expert.lakehouse.delta_ops import history

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from expert.release.audit import AuditReport
    from expert.release.publish import Verification


def mark(passed: bool) -> str:
    return "✓" if passed else "✗"


def audit_rows(reports: Mapping[str, AuditReport], show_all_of: str) -> list[dict[str, Any]]:
    """Every finding of the `show_all_of` table, and the failures of the others."""
    return [
        {
            "table": table,
            "check": f.check,
            "measured": f.measured[:48],
            "expected": f.expected[:48],
            "ok": mark(f.passed),
        }
        for table, report in reports.items()
        for f in report.findings
        if not f.passed or table == show_all_of
    ]


def verification_rows(verifications: Sequence[Verification]) -> list[dict[str, Any]]:
    """Per live table: each reconciliation with the ledger, the drift against blue, the content check."""
    rows = []
    for v in verifications:
        table = v.publication.table
        for r in v.reconciliations:
            rows.append(
                {
                    "table": table,
                    "check": r.name,
                    "live": f"{r.gold:,.2f}",
                    "ledger": f"{r.ledger:,.2f}",
                    "ok": mark(r.passed),
                }
            )
        if v.drift is not None:
            rows.append(
                {
                    "table": table,
                    "check": f"drift vs blue (max {v.drift.tolerance:.1%})",
                    "live": f"{v.drift.worst_relative_change:.2%} ({v.drift.worst_measure})",
                    "ledger": f"{v.drift.common_keys} keys",
                    "ok": mark(v.drift.passed),
                }
            )
        rows.append(
            {
                "table": table,
                "check": "live rows = audited build",
                "live": f"{v.rows_differing_from_build} differ",
                "ledger": "0",
                "ok": mark(not v.rows_differing_from_build),
            }
        )
    return rows


def failed_checks(verifications: Sequence[Verification]) -> list[str]:
    """Short names of the checks that failed: a reconciliation's first word, `drift`, `content`."""
    names = [r.name.split(" ")[0] for v in verifications for r in v.reconciliations if not r.passed]
    names += ["drift" for v in verifications if v.drift is not None and not v.drift.passed]
    names += ["content" for v in verifications if v.rows_differing_from_build]
    return names


def history_rows(spark: SparkSession, location: str) -> list[dict[str, Any]]:
    """`DESCRIBE HISTORY`, oldest first: version, operation and, for a RESTORE, the version restored to."""
    rows = sorted(history(spark, location, None), key=lambda commit: commit["version"])
    return [
        {
            "version": r["version"],
            "operation": r["operation"],
            "restored to": (r["operationParameters"] or {}).get("version", ""),
        }
        for r in rows
    ]
