"""integration/04 end to end: publish gates, the catalog, masking, read-only sharing, governance, lineage.

The contracts and the semantic-version gate are tested in tests/test_contracts.py, the platform's
pieces on small data in tests/test_mesh.py.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from expert.runtime.data import DAYS, EPOCH, EcommerceWorld


@pytest.fixture
def outcome(pattern_run):  # type: ignore[no-untyped-def]
    result = pattern_run("integration/04")
    assert result.exit_code == 0, result.report.error
    return result


# --- The pattern run, end to end ----------------------------------------------------------------


def test_the_pattern_passes_every_invariant(outcome) -> None:  # type: ignore[no-untyped-def]
    checks = {c.name: c.passed for c in outcome.report.checks}
    assert all(checks.values())
    for expected in (
        "the quality gate rejects the raw orders feed and counts its defects exactly",
        "the PII gate refuses a product with an unclassified personal-data column",
        "a breaking change released as 1.1.0 is blocked and nothing changes",
        "the same change released as 2.0.0 is published, and 1.0.0 stays readable by time travel",
        "re-publishing the same version and data changes nothing",
        "the share's recipient reads the product, cannot write to it, and sees nothing unshared",
    ):
        assert checks.get(expected), expected
    assert outcome.report.value("data products published") == 3
    assert outcome.report.value("policy evaluations") == 24


def test_the_catalog_holds_versions_tags_lineage_and_compliance(outcome) -> None:  # type: ignore[no-untyped-def]
    db = sqlite3.connect(outcome.workdir / "platform" / "catalog.sqlite")
    products = dict(db.execute("SELECT product, version FROM products").fetchall())
    assert products == {
        "orders.products.orders": "2.0.0",
        "customers.products.customer_profile": "1.0.0",
        "marketing.products.customer_value": "1.0.0",
    }
    versions = db.execute("SELECT version FROM product_versions WHERE product = 'orders.products.orders' ORDER BY 1")
    assert [v for (v,) in versions] == ["1.0.0", "2.0.0"]
    assert {p for (p,) in db.execute("SELECT product FROM tags WHERE tag = 'pii'")} == {
        "customers.products.customer_profile"
    }
    assert {p for (p,) in db.execute("SELECT product FROM search WHERE search MATCH 'revenue'")} == {
        "orders.products.orders",  # its usage: "Revenue reporting, ..."
        "marketing.products.customer_value",  # its column `revenue`
    }
    lineage = db.execute("SELECT upstream, upstream_version, via, columns FROM lineage ORDER BY upstream").fetchall()
    assert lineage == [
        (
            "customers.products.customer_profile",
            "1.0.0",
            "customers.shared.customer_profile_for_marketing",
            "customer_id,country,segment,birth_date",
        ),
        (
            "orders.products.orders",
            "1.0.0",
            "orders.shared.orders_for_marketing",
            "order_id,customer_id,amount,order_ts",
        ),
    ]


def test_the_compliance_report_matches_an_independent_freshness_computation(outcome) -> None:  # type: ignore[no-untyped-def]
    results = json.loads((outcome.workdir / "compliance_report.json").read_text())
    assert len(results) == 8 * 3
    clock = (EPOCH + timedelta(days=DAYS)).replace(tzinfo=None)
    world = EcommerceWorld(10_000, seed=42)
    newest_profile = world.customers["updated_at"].max().tz_convert(None).to_pydatetime()
    newest_order = world.orders["order_ts"].max().tz_convert(None).to_pydatetime()
    expected = {
        "customers.products.customer_profile": clock - newest_profile <= timedelta(days=7),
        "orders.products.orders": clock - newest_order <= timedelta(days=1),
        "marketing.products.customer_value": clock - newest_order <= timedelta(days=1),
    }
    freshness = {r["product"]: r["status"] == "pass" for r in results if r["policy"] == "freshness-sla"}
    assert freshness == expected
    failures = {(r["product"], r["policy"]) for r in results if r["status"] == "FAIL"}
    assert failures == {(p, "freshness-sla") for p, ok in expected.items() if not ok}
    assert "## Violations" in (outcome.workdir / "compliance_report.md").read_text()


def test_consumers_see_pii_only_anonymised(outcome, spark) -> None:  # type: ignore[no-untyped-def]
    view = spark.table("customers__shared.customer_profile_for_marketing").toPandas().set_index("customer_id")
    truth = EcommerceWorld(10_000, seed=42).customers.set_index("customer_id")
    assert len(view) == len(truth)
    assert view["first_name"].isna().all() and view["last_name"].isna().all()
    assert list(view["email"]) == [
        hashlib.sha256(e.lower().encode()).hexdigest() for e in truth.loc[view.index, "email"]
    ]
    assert list(view["phone"]) == ["***" + p[-4:] for p in truth.loc[view.index, "phone"]]
    assert all(d.month == 1 and d.day == 1 for d in view["birth_date"])
    owner_view = spark.table("customers__products.customer_profile").select("email").toPandas()
    assert set(owner_view["email"]) == set(truth["email"])


def test_the_contract_is_the_table_ddl(outcome, spark) -> None:  # type: ignore[no-untyped-def]
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    schema = {f.name: (f.dataType.simpleString(), f.nullable) for f in spark.table("orders__products.orders").schema}
    assert schema["gross_amount"] == ("decimal(12,2)", False)
    assert schema["quantity"] == ("int", False)
    with pytest.raises((PySparkException, Py4JJavaError)):
        spark.sql(
            "INSERT INTO orders__products.orders SELECT NULL, 1, 1, 1, 1.00, 1.00, 'placed', current_timestamp()"
        ).collect()


def test_the_share_is_read_only_and_configured(outcome, spark) -> None:  # type: ignore[no-untyped-def]
    from pyspark.errors import AnalysisException

    config = yaml.safe_load((outcome.workdir / "sharing" / "delta-sharing-server.yaml").read_text())
    (table,) = config["shares"][0]["schemas"][0]["tables"]
    location = Path(table["location"].removeprefix("file://"))
    assert (location / "_delta_log").is_dir()
    recipient = "adpartner__marketing_customer_value.customer_value"
    before = spark.table(recipient).count()
    for sql in (f"INSERT INTO {recipient} SELECT * FROM {recipient}", f"DELETE FROM {recipient}"):
        with pytest.raises(AnalysisException):
            spark.sql(sql)
    assert spark.table(recipient).count() == before == spark.read.format("delta").load(str(location)).count()


def test_cloud_only_steps_are_recorded(outcome) -> None:  # type: ignore[no-untyped-def]
    recorded = outcome.report.cloud_only
    assert any(s.startswith("CREATE SHARE IF NOT EXISTS MARKETING_CUSTOMER_VALUE") for s in recorded)
    assert any("ADD ACCOUNTS = PARTNERORG.ADPARTNER" in s for s in recorded)
    assert any("TO SHARE MARKETING_CUSTOMER_VALUE" in s and "VIEW" in s for s in recorded)
    steps = [e for e in outcome.report.cloud_plan if e.service != "snowflake"]
    assert any(e.service == "delta sharing" and e.text.startswith("CREATE SHARE") for e in steps)
    assert sum(e.service == "unity catalog" for e in steps) == 2


def test_lineage_is_drawn_as_mermaid(outcome) -> None:  # type: ignore[no-untyped-def]
    text = (outcome.workdir / "lineage.mmd").read_text()
    assert text.startswith("flowchart LR")
    assert "marketing.products.customer_value 1.0.0" in text and "orders.products.orders 2.0.0" in text
    assert text.count("-->") == 2 + 2 + 2


def test_the_mesh_gate_and_datacontract_breaking_are_compared(outcome) -> None:  # type: ignore[no-untyped-def]
    from expert.runtime.datacontract_cli import INSTALL, find_cli

    if find_cli() is None:
        pytest.skip(f"datacontract-cli is not installed (`make tools` runs {INSTALL}); the pattern printed the command")
    checks = {c.name: c for c in outcome.report.checks}
    agreement = checks["datacontract-cli and the mesh's gate agree: the change is breaking, in the same columns"]
    assert agreement.passed and "amount" in agreement.detail and "quantity" in agreement.detail
