"""Data mesh: contracts, the semantic-version gate, publish gates, masking, read-only sharing, governance."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from expert.runtime.contracts import (
    Bump,
    ContractError,
    DataContract,
    QualityRule,
    SemVer,
    bump_between,
    diff_columns,
    is_widening,
    platform_problems,
    schema_problems,
    version_gate,
)
from expert.runtime.data import DAYS, EPOCH, EcommerceWorld
from expert.runtime.pattern import load_module, select_patterns

CONTRACTS = Path(__file__).resolve().parents[2] / "expert" / "integration" / "contracts"
ORDERS = CONTRACTS / "orders" / "orders.odcs.yaml"


@pytest.fixture(scope="module")
def mesh() -> Any:
    (meta,) = select_patterns("integration/04")
    return load_module(meta)


@pytest.fixture
def outcome(pattern_run):  # type: ignore[no-untyped-def]
    result = pattern_run("integration/04")
    assert result.exit_code == 0, result.report.error
    return result


def orders_doc() -> dict[str, Any]:
    return DataContract.load(ORDERS).to_document()


def prop(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in document["schema"][0]["properties"] if p["name"] == name)


def revised(document: dict[str, Any], version: str) -> DataContract:
    return DataContract.from_document({**document, "version": version}, f"test {version}")


# --- Contracts: the standard's schema and the platform's rules ----------------------------------


def test_every_shipped_contract_is_valid_odcs_and_passes_the_platform_rules() -> None:
    paths = sorted(CONTRACTS.rglob("*.odcs.yaml"))
    assert len(paths) == 4
    for path in paths:
        contract = DataContract.load(path)
        assert contract.document["apiVersion"] == "v3.2.0"
        assert platform_problems(contract) == [], path.name
        assert contract.owner and contract.latency and contract.primary_key


def test_the_official_schema_rejects_unknown_keys_and_wrong_values() -> None:
    document = orders_doc()
    prop(document, "order_id")["requried"] = True
    assert any("requried" in p for p in schema_problems(document))
    document = orders_doc()
    prop(document, "status")["logicalType"] = "text"
    assert any("logicalType" in p for p in schema_problems(document))
    with pytest.raises(ContractError):
        DataContract.from_document({"kind": "DataContract", "apiVersion": "v3.2.0"}, "no id or version")


def test_the_platform_requires_an_owner_a_semver_and_anonymised_pii() -> None:
    document = orders_doc()
    document["team"]["members"] = [m for m in document["team"]["members"] if m["role"] != "owner"]
    document["version"] = "1.0"
    prop(document, "customer_id")["classification"] = "restricted"
    problems = platform_problems(DataContract.from_document(document, "bad"))
    assert any("owner" in p for p in problems)
    assert any("semantic version" in p for p in problems)
    assert any("customer_id" in p and "anonymizationStrategy" in p for p in problems)


def test_contract_accessors_read_the_yaml() -> None:
    customers = DataContract.load(CONTRACTS / "customers" / "customer_profile.odcs.yaml")
    assert customers.product == "customers.products.customer_profile"
    assert {c.name: c.anonymization for c in customers.protected_columns} == {
        "first_name": "redact",
        "last_name": "redact",
        "email": "hash",
        "phone": "last4",
        "birth_date": "year",
    }
    assert customers.latency is not None and customers.latency.limit == timedelta(days=7)
    marketing = DataContract.load(CONTRACTS / "marketing" / "customer_value.odcs.yaml")
    assert marketing.declared_sources == {"orders.products.orders", "customers.products.customer_profile"}


# --- The semantic-version gate, both ways --------------------------------------------------------


def test_a_rename_is_blocked_as_a_minor_release_and_allowed_as_a_major_one() -> None:
    published = DataContract.load(ORDERS)
    document = orders_doc()
    prop(document, "amount")["name"] = "gross_amount"
    blocked = version_gate(published, revised(document, "1.1.0"))
    assert not blocked.allowed
    assert (blocked.required, blocked.proposed) == (Bump.MAJOR, Bump.MINOR)
    assert [(c.kind, c.detail) for c in blocked.changes] == [("renamed", "amount → gross_amount")]
    allowed = version_gate(published, revised(document, "2.0.0"))
    assert allowed.allowed and allowed.proposed == Bump.MAJOR


@pytest.mark.parametrize(
    ("edit", "kind", "breaking"),
    [
        (lambda d: d["schema"][0]["properties"].pop(6), "removed", True),
        (lambda d: prop(d, "quantity").update(physicalType="int"), "type narrowed", True),
        (lambda d: prop(d, "quantity").update(physicalType="string", logicalType="string"), "type changed", True),
        (lambda d: prop(d, "customer_id").update(required=False), "now nullable", True),
        (lambda d: prop(d, "status").update(classification="restricted"), "reclassified", True),
        (lambda d: prop(d, "unit_price").update(physicalType="decimal(14,2)"), "type widened", False),
        (
            lambda d: d["schema"][0]["properties"].append(
                {"name": "channel", "logicalType": "string", "physicalType": "string", "classification": "internal"}
            ),
            "added",
            False,
        ),
    ],
)
def test_each_kind_of_change_is_classified(edit: Any, kind: str, breaking: bool) -> None:
    published = DataContract.load(ORDERS)
    document = orders_doc()
    edit(document)
    changes = diff_columns(published.columns, DataContract.from_document(document, kind).columns)
    assert [(c.kind, c.breaking) for c in changes] == [(kind, breaking)]
    needed = Bump.MAJOR if breaking else Bump.MINOR
    too_small = {Bump.MAJOR: "1.1.0", Bump.MINOR: "1.0.1"}[needed]
    just_right = {Bump.MAJOR: "2.0.0", Bump.MINOR: "1.1.0"}[needed]
    assert not version_gate(published, revised(document, too_small)).allowed
    assert version_gate(published, revised(document, just_right)).allowed


def test_versions_only_move_forward_and_a_published_version_is_immutable() -> None:
    published = DataContract.load(ORDERS)
    same = version_gate(published, published)
    assert same.allowed and "data refresh" in same.reason
    document = orders_doc()
    document["description"]["usage"] = "Revenue reporting."
    assert not version_gate(published, revised(document, "1.0.0")).allowed
    assert version_gate(published, revised(document, "1.0.1")).allowed
    assert not version_gate(published, revised(document, "0.9.0")).allowed
    assert version_gate(None, published).allowed


def test_semver_arithmetic_and_type_widening() -> None:
    assert bump_between(SemVer.parse("1.2.3"), SemVer.parse("2.0.0")) == Bump.MAJOR
    assert bump_between(SemVer.parse("1.2.3"), SemVer.parse("1.3.0")) == Bump.MINOR
    assert bump_between(SemVer.parse("1.2.3"), SemVer.parse("1.2.4")) == Bump.PATCH
    assert bump_between(SemVer.parse("1.2.3"), SemVer.parse("1.2.3")) == Bump.NONE
    with pytest.raises(ValueError):
        SemVer.parse("v1.2")
    assert is_widening("int", "bigint") and not is_widening("bigint", "int")
    assert is_widening("decimal(12,2)", "decimal(14,2)") and not is_widening("decimal(12,2)", "decimal(12,1)")
    assert is_widening("int", "decimal(12,2)") and not is_widening("bigint", "decimal(12,2)")
    assert is_widening("DATE", "timestamp") and not is_widening("string", "int")


def test_quality_operators_follow_odcs() -> None:
    def rule(**kw: Any) -> QualityRule:
        operator, threshold = next(iter(kw.items()))
        return QualityRule(id="r", operator=operator, threshold=threshold)

    assert rule(mustBe=0).passes(0) and not rule(mustBe=0).passes(1)
    assert rule(mustBeGreaterThan=0).passes(1) and not rule(mustBeGreaterThan=0).passes(0)
    assert rule(mustBeLessOrEqualTo=5).passes(5)
    assert rule(mustBeBetween=[0, 10]).passes(5) and not rule(mustBeBetween=[0, 10]).passes(10)
    assert rule(mustNotBeBetween=[0, 10]).passes(10)


# --- The platform's pieces, on small data ---------------------------------------------------------


def test_names_map_unity_catalog_onto_the_session_catalog(mesh: Any, tmp_path: Path) -> None:
    name = mesh.TableName.parse("orders.products.orders")
    assert (name.uc, name.database, name.local) == (
        "orders.products.orders",
        "orders__products",
        "orders__products.orders",
    )
    assert name.path(tmp_path) == tmp_path / "orders" / "products" / "orders"
    with pytest.raises(ValueError):
        mesh.TableName.parse("orders.orders")


def test_the_profile_counts_defects_like_pandas(mesh: Any, spark) -> None:  # type: ignore[no-untyped-def]
    contract = DataContract.load(ORDERS)
    world = EcommerceWorld(2_000, seed=7)
    raw, dirt = world.deliver("orders", "order_id")
    frame = raw.copy()
    frame.loc[frame.index[:3], "status"] = "lost"
    df = mesh.cast_to_contract(frame, contract, spark)
    df.createOrReplaceTempView("profile_test")
    profile = mesh.profile_candidate(spark, df, contract, "profile_test")
    keyed = frame["order_id"].dropna()
    assert profile.rows == len(frame)
    assert profile.rule_values["order_id_not_null"] == frame["order_id"].isna().sum() == dirt.null_keys
    assert profile.rule_values["order_id_unique"] == len(keyed) - keyed.nunique() == dirt.duplicates
    assert profile.rule_values["status_known"] == 3
    assert profile.rule_values["amount_is_price_times_quantity"] == 0
    assert profile.nulls["order_id"] == dirt.null_keys
    assert profile.pii_findings == {}


def test_the_pii_detector_reads_values_and_names(mesh: Any, spark) -> None:  # type: ignore[no-untyped-def]
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
            for i, p in enumerate(mesh.PII_VALUE_PATTERNS.values())
        ]
    row = df.agg(*exprs).first().asDict()
    findings = mesh.pii_findings(df, row, strings)
    assert set(findings) == {"contact", "mobile", "dob"}
    assert "email" in findings["contact"] and "phone" in findings["mobile"]


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
