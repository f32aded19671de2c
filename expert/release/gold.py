"""Releases of the medallion's gold tables, and their checks: which ledger each one must reconcile with.

Why here and not in the contract: a contract describes one table on its own (schema, keys,
bounds, freshness). Reconciliation is a relation between tables: every order's amount in silver
must be in exactly one day's revenue in gold. A gold table can satisfy its contract and still be
wrong (double-counted revenue has the right schema and the right number of rows); these checks
catch that class of bug.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from expert.lakehouse import (
    GOLD_DAILY_FUNNEL,
    GOLD_DAILY_SALES,
    SILVER_EVENTS,
    SILVER_ORDERS,
    GoldSpec,
    MedallionLayout,
)
from expert.release.publish import Publication, Reconciliation, Verification, verify_publication

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DRIFT_TOLERANCE = 0.005
"""Largest relative change a release may make to a measure of a day both versions cover (0.5 %)."""


def gold_reconciliations(ledger: MedallionLayout) -> dict[str, tuple[Reconciliation, ...]]:
    """Per gold table, the totals that must equal the silver tables they aggregate."""
    orders, events = ledger.table(SILVER_ORDERS), ledger.table(SILVER_EVENTS)
    return {
        GOLD_DAILY_SALES: (
            Reconciliation("revenue = Σ silver_orders.amount", "sum(revenue)", orders, "sum(amount)", 1e-4),
            Reconciliation("orders = silver_orders rows", "sum(orders)", orders, "count(*)"),
            Reconciliation("units = Σ silver_orders.quantity", "sum(units)", orders, "sum(quantity)"),
        ),
        GOLD_DAILY_FUNNEL: (
            Reconciliation(
                "views + carts + purchases = silver_events rows", "sum(views + carts + purchases)", events, "count(*)"
            ),
        ),
    }


def gold_verifier(
    spark: SparkSession, ledger: MedallionLayout, specs: Sequence[GoldSpec]
) -> Callable[[Publication], Verification]:
    """How a published gold table is verified: same rows as its audited build, reconciled with the
    silver ledger it aggregates, and no more than DRIFT_TOLERANCE of change on days blue covered."""
    checks = gold_reconciliations(ledger)
    by_table = {spec.table: spec for spec in specs}

    def verify(publication: Publication) -> Verification:
        spec = by_table[publication.table]
        return verify_publication(
            spark, publication, checks[spec.table], spec.keys, list(spec.measures), drift_tolerance=DRIFT_TOLERANCE
        )

    return verify


@dataclass(frozen=True)
class Release:
    """A version of the pipeline's gold definitions, and what it changes."""

    version: str
    change: str
    specs: tuple[GoldSpec, ...]


def with_spec(specs: Sequence[GoldSpec], table: str, **changes: Any) -> tuple[GoldSpec, ...]:
    """`specs` with one table's definition changed (its measures, keys or schema)."""
    return tuple(dataclasses.replace(spec, **changes) if spec.table == table else spec for spec in specs)


@dataclass
class ReleaseOutcome:
    """What happened to one release: audited, published, verified, and the decision taken."""

    release: Release
    audit_passed: bool
    published: bool = False
    verification: str = "-"
    decision: str = "-"
    live_versions: dict[str, int | None] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "release": self.release.version,
            "contract audit": "passed" if self.audit_passed else "failed",
            "published": "yes" if self.published else "no",
            "verification": self.verification,
            "decision": self.decision,
            "live version after": self.live_versions.get(GOLD_DAILY_SALES),
        }
