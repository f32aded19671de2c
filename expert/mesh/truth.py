"""Ground truth for integration/04, computed in pandas straight from the generator, never through Spark.

Why apart from the platform: a check that recomputes a product with the code that built it proves
nothing. These functions derive the same numbers from the generator's own tables, so the mesh's
products are compared with an independent computation.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from expert.runtime.data import EcommerceWorld


def publishable_orders(world: EcommerceWorld) -> pd.DataFrame:
    """The generator's orders minus those whose key the feed lost: no pipeline can publish those."""
    raw, _ = world.deliver("orders", "order_id")
    return world.orders[world.orders["order_id"].isin(raw["order_id"].dropna())]


def expected_customer_value(world: EcommerceWorld, clock: datetime, high: float, medium: float) -> pd.DataFrame:
    """Ground truth for marketing's product, computed in pandas straight from the generator."""
    orders = (
        publishable_orders(world)
        .groupby("customer_id")
        .agg(orders_count=("order_id", "count"), revenue=("amount", "sum"), last_order_ts=("order_ts", "max"))
    )
    out = world.customers[["customer_id", "country", "segment", "birth_date"]].merge(
        orders, on="customer_id", how="left"
    )
    out["orders_count"] = out["orders_count"].fillna(0).astype("int64")
    out["revenue"] = out["revenue"].fillna(0.0).round(2)
    age = clock.year - pd.to_datetime(out["birth_date"]).dt.year
    out["age_band"] = ["18-34" if a < 35 else "35-54" if a < 55 else "55+" for a in age]
    out["value_tier"] = ["high" if r >= high else "medium" if r >= medium else "low" for r in out["revenue"]]
    return out.drop(columns=["birth_date"]).sort_values("customer_id").reset_index(drop=True)


# --- Steps -------------------------------------------------------------------------------------


def same_customer_value(actual: pd.DataFrame, expected: pd.DataFrame) -> bool:
    """Row for row (by customer): orders, revenue to the cent, age band and value tier."""
    revenue_ok = (actual["revenue"].astype(float) - expected["revenue"]).abs().max() < 0.005
    return (
        len(actual) == len(expected)
        and list(actual["customer_id"]) == list(expected["customer_id"])
        and list(actual["orders_count"]) == list(expected["orders_count"])
        and bool(revenue_ok)
        and list(actual["age_band"]) == list(expected["age_band"])
        and list(actual["value_tier"]) == list(expected["value_tier"])
    )


def newest_values(world: EcommerceWorld) -> dict[str, datetime]:
    """Per product, the newest value of its freshness column as the generator made it (naive UTC)."""
    last_order = publishable_orders(world)["order_ts"].max()
    newest = {
        "orders.products.orders": last_order,
        "customers.products.customer_profile": world.customers["updated_at"].max(),
        "marketing.products.customer_value": last_order,
    }
    return {product: pd.Timestamp(ts).tz_convert(None).to_pydatetime() for product, ts in newest.items()}
