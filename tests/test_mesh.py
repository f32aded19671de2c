"""The data-mesh platform (expert/mesh): names, profiling, the PII detector, the catalog and lineage, on small data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from expert.mesh.catalog import ProductCatalog
from expert.mesh.lineage import lineage_mermaid, lineage_tree
from expert.mesh.names import TableName
from expert.mesh.platform import Read, cast_to_contract
from expert.mesh.profiling import PII_VALUE_PATTERNS, pii_findings, profile_candidate
from expert.runtime.contracts import DataContract
from expert.runtime.data import EcommerceWorld

CONTRACTS = Path(__file__).resolve().parents[1] / "expert" / "integration" / "contracts"
ORDERS = CONTRACTS / "orders" / "orders.odcs.yaml"


def test_names_map_unity_catalog_onto_the_session_catalog(tmp_path: Path) -> None:
    name = TableName.parse("orders.products.orders")
    assert (name.uc, name.database, name.local) == (
        "orders.products.orders",
        "orders__products",
        "orders__products.orders",
    )
    assert name.path(tmp_path) == tmp_path / "orders" / "products" / "orders"
    with pytest.raises(ValueError):
        TableName.parse("orders.orders")


def test_the_profile_counts_defects_like_pandas(spark) -> None:  # type: ignore[no-untyped-def]
    contract = DataContract.load(ORDERS)
    world = EcommerceWorld(2_000, seed=7)
    raw, dirt = world.deliver("orders", "order_id")
    frame = raw.copy()
    frame.loc[frame.index[:3], "status"] = "lost"
    df = cast_to_contract(frame, contract, spark)
    df.createOrReplaceTempView("profile_test")
    profile = profile_candidate(spark, df, contract, "profile_test")
    keyed = frame["order_id"].dropna()
    assert profile.rows == len(frame)
    assert profile.rule_values["order_id_not_null"] == frame["order_id"].isna().sum() == dirt.null_keys
    assert profile.rule_values["order_id_unique"] == len(keyed) - keyed.nunique() == dirt.duplicates
    assert profile.rule_values["status_known"] == 3
    assert profile.rule_values["amount_is_price_times_quantity"] == 0
    assert profile.nulls["order_id"] == dirt.null_keys
    assert profile.pii_findings == {}


def test_the_pii_detector_reads_values_and_names(spark) -> None:  # type: ignore[no-untyped-def]
    customers = EcommerceWorld(2_000, seed=7).customers
    frame = pd.DataFrame(
        {
            "contact": customers["email"],
            "notes": "called twice",
            "mobile": customers["phone"],
            "dob": customers["birth_date"],
        }
    )
    df = spark.createDataFrame(frame)
    strings = ["contact", "notes", "mobile"]
    from pyspark.sql import functions as F

    exprs = [F.count(F.lit(1)).alias("rows")]
    for name in strings:
        exprs.append(F.count(name).alias(f"present__{name}"))
        exprs += [
            F.sum(F.col(name).rlike(p).cast("long")).alias(f"pii{i}__{name}")
            for i, p in enumerate(PII_VALUE_PATTERNS.values())
        ]
    row = df.agg(*exprs).first().asDict()
    findings = pii_findings(df, row, strings)
    assert set(findings) == {"contact", "mobile", "dob"}
    assert "email" in findings["contact"] and "phone" in findings["mobile"]


def test_the_catalog_finds_products_and_draws_their_lineage(tmp_path: Path) -> None:
    catalog = ProductCatalog(tmp_path / "catalog.sqlite")
    orders = DataContract.load(ORDERS)
    marketing = DataContract.load(CONTRACTS / "marketing" / "customer_value.odcs.yaml")
    for contract in (orders, marketing):
        catalog.register(contract, location=tmp_path / contract.table, delta_version=0, rows=1, fingerprint="f")
    view = "orders.shared.orders_for_marketing"
    catalog.record_grant(orders.product, "marketing", view)
    catalog.record_lineage(marketing, [Read(orders.product, "1.0.0", 0, view, ("order_id", "amount"))])
    catalog.record_share("s", "delta sharing", marketing.product, "partner")
    assert catalog.find("domain", "orders") == {orders.product}
    assert catalog.find("text", "revenue") == {orders.product, marketing.product}
    assert [r["product"] for r in catalog.downstream_of(orders.product)] == [marketing.product]
    tree = lineage_tree(catalog)
    assert tree[0] == f"{orders.product} 1.0.0" and any("delta sharing share s → partner" in line for line in tree)
    mermaid, recorded = lineage_mermaid(catalog)
    assert recorded == {"grants": 1, "reads": 1, "shares": 1} and mermaid.count("-->") == 3
    with pytest.raises(KeyError):
        catalog.find("colour", "red")
