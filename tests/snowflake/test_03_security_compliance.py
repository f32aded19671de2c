"""snowflake/03: the role model, the policies evaluated per role, PII discovery against the generator, the claim.

Runs of main() come from the shared `pattern_run` fixture (cached per argument set; no Spark started).
"""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from pydantic import ValidationError

from expert.runtime.data import EcommerceWorld
from expert.runtime.pattern import load_module, select_patterns
from expert.runtime.pii_discovery import discover_pii
from expert.runtime.snowflake_ddl import (
    AuthenticationPolicy,
    NetworkRule,
    SetAuthenticationPolicy,
    SetUserPublicKey,
    User,
)


@pytest.fixture(scope="module")
def sec() -> ModuleType:
    (meta,) = select_patterns("snowflake/03")
    return load_module(meta)


@pytest.fixture
def governed(sec: ModuleType, snowflake_local):  # type: ignore[no-untyped-def]
    """The pattern's tables in a local engine, with the generator's ground truth of PII columns."""
    for schema in ("CORE", "GOVERNANCE"):
        snowflake_local.execute(f"CREATE DATABASE IF NOT EXISTS {sec.DATABASE}")
        snowflake_local.execute(f"CREATE SCHEMA IF NOT EXISTS {sec.DATABASE}.{schema}")
    truth = sec.load_tables(snowflake_local, EcommerceWorld(2000, seed=11), 11)
    return snowflake_local, truth


def test_pattern_verifies_the_claim(pattern_run, sec: ModuleType) -> None:  # type: ignore[no-untyped-def]
    outcome = pattern_run("snowflake/03")
    code, report = outcome.exit_code, outcome.report
    assert code == 0, report.error
    assert all(c.passed for c in report.checks)
    assert report.checks[-1].name == "no role outside the allowed set can read any PII column unmasked"
    assert report.value("roles checked") == len(sec.declared_model().roles)


def test_pii_figure_matches_the_generator(pattern_run, sec: ModuleType, snowflake_local) -> None:  # type: ignore[no-untyped-def]
    report = pattern_run("snowflake/03").report
    for schema in ("CORE", "GOVERNANCE"):
        snowflake_local.execute(f"CREATE DATABASE IF NOT EXISTS {sec.DATABASE}")
        snowflake_local.execute(f"CREATE SCHEMA IF NOT EXISTS {sec.DATABASE}.{schema}")
    truth = sec.load_tables(snowflake_local, EcommerceWorld(10_000, seed=42), 42)
    assert report.value("PII columns found") == sum(len(columns) for columns in truth.values())


def test_cloud_only_record_in_order(pattern_run, sec: ModuleType) -> None:  # type: ignore[no-untyped-def]
    recorded = pattern_run("snowflake/03").report.cloud_only

    # Network and identity first, in the order the layers are taught.
    assert recorded[0].startswith("CREATE OR REPLACE NETWORK POLICY CORP_ONLY_IPS")
    assert recorded[1].startswith("CREATE OR REPLACE NETWORK POLICY LOADER_NAT_ONLY")
    assert recorded[2].startswith("CREATE NETWORK RULE IF NOT EXISTS SHOP_PII.GOVERNANCE.PRIVATE_ENDPOINT_ONLY")
    assert recorded[5] == "ALTER USER SVC_LOADER SET NETWORK_POLICY = LOADER_NAT_ONLY"
    assert recorded[6] == "ALTER ACCOUNT SET NETWORK_POLICY = CORP_ONLY_IPS"
    assert recorded[7].startswith("CREATE SECURITY INTEGRATION IF NOT EXISTS OKTA_SSO")
    # Every statement the RBAC model implies, as one contiguous block, in the model's own order.
    rbac = [s.to_sql() for s in sec.declared_model().statements()]
    start = recorded.index(rbac[0])
    assert recorded[start : start + len(rbac)] == rbac
    # Then policies are created before they are attached, and the audit queries come last.
    after = recorded[start + len(rbac) :]
    first_attach = next(i for i, s in enumerate(after) if "SET MASKING POLICY" in s)
    created = [s for s in after[:first_attach] if s.startswith("CREATE OR REPLACE MASKING POLICY")]
    assert len(created) == len(sec.MASKS)
    assert any(s.startswith("CREATE OR REPLACE ROW ACCESS POLICY") for s in after[:first_attach])
    assert [s.split()[-1] for s in after if s.startswith("SHOW GRANTS TO ROLE")] == [
        r for r in sec.declared_model().roles if r.startswith(("AR_", "FR_"))
    ]
    assert "SNOWFLAKE.ACCOUNT_USAGE.LOGIN_HISTORY" in after[-2]
    assert "SNOWFLAKE.ACCOUNT_USAGE.ACCESS_HISTORY" in after[-1]


def test_closure_and_select_follow_the_role_graph(sec: ModuleType) -> None:
    model = sec.declared_model()
    assert model.closure("SYSADMIN") >= {"FR_ANALYST", "AR_CORE_READ", "AR_WH_BI", "PUBLIC"}
    assert "AR_PII_CLEAR" not in model.closure("SYSADMIN")
    assert "AR_PII_CLEAR" in model.closure("FR_COMPLIANCE")
    assert model.closure("ACCOUNTADMIN") >= model.closure("SYSADMIN") | model.closure("SECURITYADMIN")
    assert model.can_select("FR_SUPPORT_EU", f"{sec.CORE}.CUSTOMERS")
    assert not model.can_select("FR_SUPPORT_EU", f"{sec.CORE}.MARKETING_PREFS")
    assert not model.can_select("USERADMIN", f"{sec.CORE}.CUSTOMERS")


def test_rbac_checks_catch_bad_models(sec: ModuleType) -> None:
    conflicted = sec.declared_model().copy()
    conflicted.children["FR_GOVERNANCE_ADMIN"].add("AR_PII_CLEAR")
    public = sec.declared_model().copy()
    public.grants["PUBLIC"] = {sec.Grant(sec.Privilege.SELECT, sec.GrantTarget.TABLE, f"{sec.CORE}.CUSTOMERS")}
    failed = {name for name, ok, _ in sec.rbac_findings(conflicted) if not ok}
    assert failed == {"no role outside the exempt set combines conflicting duties"}
    failed = {name for name, ok, _ in sec.rbac_findings(public) if not ok}
    assert failed == {"nothing is granted to PUBLIC"}
    assert all(ok for _, ok, _ in sec.rbac_findings(sec.declared_model()))


def test_claim_fails_when_pii_access_rolls_up_to_sysadmin(sec: ModuleType, governed) -> None:  # type: ignore[no-untyped-def]
    session, _ = governed
    guarded = sec.protections(discover_pii(session, sec.DATABASE, "CORE"))
    readers, _ = sec.policy_evaluator(session, sec.declared_model(), guarded).clear_readers()
    assert readers == set(sec.ALLOWED_PII_CLEAR)
    rolled_up = sec.declared_model().copy()
    rolled_up.children["SYSADMIN"].add("FR_COMPLIANCE")
    readers, _ = sec.policy_evaluator(session, rolled_up, guarded).clear_readers()
    assert readers - sec.ALLOWED_PII_CLEAR == {"SYSADMIN", "ACCOUNTADMIN"}


def test_discovery_needs_both_names_and_values(sec: ModuleType, governed) -> None:  # type: ignore[no-untyped-def]
    session, truth = governed
    findings = discover_pii(session, sec.DATABASE, "CORE")
    found = {(f.table, f.column) for f in findings if f.category}
    assert found == {(t, c) for t, columns in truth.items() for c in columns}
    by_name_only = {(f.table, f.column) for f in findings if f.by_name}
    assert by_name_only != found, "names alone would be wrong in both directions"


def test_row_policy_follows_the_entitlement_table(sec: ModuleType, governed) -> None:  # type: ignore[no-untyped-def]
    session, _ = governed
    model = sec.declared_model()
    guarded = sec.protections(discover_pii(session, sec.DATABASE, "CORE"))
    seen = sec.policy_evaluator(session, model, guarded).visible("FR_SUPPORT_US", f"{sec.CORE}.CUSTOMERS")
    assert seen["rows"] == session.scalar(f"SELECT COUNT(*) FROM {sec.CORE}.CUSTOMERS WHERE COUNTRY = 'US'")
    assert all(v == 0 for v in seen["clear"].values())


def test_audit_trail_is_written_and_complete(pattern_run) -> None:  # type: ignore[no-untyped-def]
    outcome = pattern_run("snowflake/03")
    code, report = outcome.exit_code, outcome.report
    assert code == 0
    from expert.runtime.workdir import work_root

    trail = work_root() / "snowflake" / "03_security_compliance" / "audit_trail.jsonl"
    records = [json.loads(line) for line in trail.read_text().splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert sum(1 for r in records if r["category"] == "cloud-only (recorded)") == len(report.cloud_only)
    assert report.value("statements that read PII tables") == sum(
        1
        for r in records
        if {f"{t}" for t in r["tables"]} & {"SHOP_PII.CORE.CUSTOMERS", "SHOP_PII.CORE.SUPPORT_TICKETS"}
    )


def test_identity_definitions_are_validated() -> None:
    with pytest.raises(ValidationError, match="key pair"):
        User(name="svc", type="SERVICE")
    with pytest.raises(ValidationError, match="VPC endpoint"):
        NetworkRule(name="r", type="AWSVPCEID", values=["not-an-endpoint"])
    with pytest.raises(ValidationError):
        NetworkRule(name="r", type="IPV4", values=["10.0.0.300/8"])
    policy = AuthenticationPolicy(name="p", authentication_methods=["PASSWORD"], mfa_enrollment="REQUIRED")
    assert (
        "AUTHENTICATION_METHODS = ('PASSWORD')" in policy.to_sql() and "MFA_ENROLLMENT = 'REQUIRED'" in policy.to_sql()
    )
    assert SetAuthenticationPolicy(policy="p").to_sql() == "ALTER ACCOUNT SET AUTHENTICATION POLICY P"
    assert (
        SetUserPublicKey(user="svc", public_key="MIIB", slot=2).to_sql()
        == "ALTER USER SVC SET RSA_PUBLIC_KEY_2 = 'MIIB'"
    )
