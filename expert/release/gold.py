"""The release checks of the medallion's gold tables: which ledger each one must reconcile with.

Why here and not in the contract: a contract describes one table on its own (schema, keys,
bounds, freshness). Reconciliation is a relation between tables: every order's amount in silver
must be in exactly one day's revenue in gold. A gold table can satisfy its contract and still be
wrong (double-counted revenue has the right schema and the right number of rows); these checks
catch that class of bug.
"""

from __future__ import annotations

from expert.lakehouse import GOLD_DAILY_FUNNEL, GOLD_DAILY_SALES, SILVER_EVENTS, SILVER_ORDERS, MedallionLayout
from expert.release.publish import Reconciliation

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
