"""Data contracts (expert/runtime/contracts.py): the ODCS schema, the platform's rules, the semantic-version gate."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

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

CONTRACTS = Path(__file__).resolve().parents[1] / "expert" / "integration" / "contracts"
ORDERS = CONTRACTS / "orders" / "orders.odcs.yaml"


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


# --- The ODCS tooling practitioners run: datacontract-cli, from its own tool environment ---------


def make_tools_installs_datacontract() -> bool:
    """Whether `make tools` runs the install script yet (then CI, with EXPERT_REQUIRE_TOOLS=1, demands the CLI)."""
    root = CONTRACTS.parents[2]
    wiring = (root / "Makefile").read_text() + (root / "scripts" / "install-tools.sh").read_text()
    return "install-datacontract.sh" in wiring


@pytest.fixture(scope="module")
def datacontract() -> Path:
    """The datacontract-cli executable; skips without it (fails under EXPERT_REQUIRE_TOOLS=1 once `make tools`
    installs it, as conftest's `require_tool` does for the other tools)."""
    import os

    from expert.runtime.datacontract_cli import INSTALL, find_cli

    cli = find_cli()
    if cli is None:
        message = f"datacontract-cli is not installed ({INSTALL} installs it)"
        if os.environ.get("EXPERT_REQUIRE_TOOLS") == "1" and make_tools_installs_datacontract():
            pytest.fail(message + "; EXPERT_REQUIRE_TOOLS=1 makes this a failure")
        pytest.skip(message)
    return cli


ALL_CONTRACTS = sorted(CONTRACTS.rglob("*.odcs.yaml")) + sorted(
    (CONTRACTS.parents[2] / "deploy" / "contracts").glob("*.odcs.yaml")
)


@pytest.mark.parametrize("path", ALL_CONTRACTS, ids=lambda p: p.name)
def test_every_contract_passes_datacontract_lint(datacontract: Path, path: Path) -> None:
    from expert.runtime.datacontract_cli import lint

    result = lint(datacontract, path)
    assert result.passed and "valid" in result.output, result.output[-2000:]


def test_datacontract_lint_rejects_a_wrong_value_and_only_warns_on_a_misspelt_key(
    datacontract: Path, tmp_path: Path
) -> None:
    """A wrong logicalType fails both checks. A misspelt key fails the platform's strict schema check,
    but datacontract-cli 1.2.8 only warns ("unknown fields are ignored"): why the platform keeps its own."""
    import yaml

    from expert.runtime.datacontract_cli import lint

    def contract_with(edit: str, value: object, name: str) -> tuple[dict[str, Any], Path]:
        document = orders_doc()
        prop(document, "order_id")[edit] = value
        path = tmp_path / f"{name}.odcs.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return document, path

    wrong_type, wrong_type_path = contract_with("logicalType", "text", "wrong-type")
    assert schema_problems(wrong_type) and not lint(datacontract, wrong_type_path).passed
    typo, typo_path = contract_with("requried", True, "typo")
    warned = lint(datacontract, typo_path)
    assert schema_problems(typo) and warned.passed and "unknown fields are ignored: 'requried'" in warned.output


def test_datacontract_breaking_finds_the_columns_the_version_gate_calls_breaking(datacontract: Path) -> None:
    from expert.runtime.datacontract_cli import breaking

    v2 = CONTRACTS / "orders" / "orders-v2.odcs.yaml"
    result, changes = breaking(datacontract, ORDERS, v2)
    errors = {c.field.rsplit(".", 1)[-1] for c in changes if c.severity == "ERROR"}
    gate = version_gate(DataContract.load(ORDERS), DataContract.load(v2).with_changes("minor", version="1.1.0"))
    assert not result.passed and not gate.allowed
    assert errors == {c.column for c in gate.changes if c.breaking} == {"amount", "quantity"}
    same, no_changes = breaking(datacontract, ORDERS, ORDERS)
    assert same.passed and not [c for c in no_changes if c.severity == "ERROR"]


def test_the_typed_model_is_what_the_accessors_read() -> None:
    contract = DataContract.load(ORDERS)
    assert contract.model.id == contract.id and contract.model.version == contract.version
    assert contract.unity_catalog_server is not None and contract.unity_catalog_server.schema_ == "products"
    assert [c.name for c in contract.columns] == [p.name for p in contract.table_object.properties or ()]
    assert contract.usage.startswith("Revenue reporting")
