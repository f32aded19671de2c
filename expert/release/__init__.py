"""Write-audit-publish for the medallion's gold tables: audit, atomic publish, verify, roll back.

Why a package: the same operations run in three places, and must be the same code in all three:
the CI/CD pattern (databricks/03) rehearses a release locally, the deployed Databricks job runs
them as its `audit` and `publish` tasks (deploy/databricks/lakehouse_task.py), and the tests
exercise them on small tables.

- `audit`: check a staged table against its data contract (ODCS YAML in deploy/contracts):
  schema, required columns, unique key, row-count bounds, SQL rules, freshness.
- `publish`: make a staged table live in one Delta commit, record the decision in a release log,
  verify the live table (content, reconciliation with the ledger, drift against the version it
  replaced) and restore the previous version with `RESTORE` when verification fails.
"""

from expert.release.audit import AuditReport, Finding, audit_table, load_contracts
from expert.release.publish import (
    Decision,
    Drift,
    Publication,
    PublishResult,
    Reconciliation,
    ReconciliationResult,
    ReleaseRecord,
    Verification,
    drift_against_previous,
    live_release,
    live_version,
    publish,
    read_release_log,
    reconcile,
    record_decision,
    release_tables,
    rollback,
    rows_differ,
    verify_publication,
)

__all__ = [
    "AuditReport",
    "Decision",
    "Drift",
    "Finding",
    "Publication",
    "PublishResult",
    "Reconciliation",
    "ReconciliationResult",
    "ReleaseRecord",
    "Verification",
    "audit_table",
    "drift_against_previous",
    "live_release",
    "live_version",
    "load_contracts",
    "publish",
    "read_release_log",
    "reconcile",
    "record_decision",
    "release_tables",
    "rollback",
    "rows_differ",
    "verify_publication",
]
