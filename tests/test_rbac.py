"""The role graph: closure, effective privileges, generated DDL, and drift against SHOW GRANTS rows."""

from __future__ import annotations

from expert.runtime.rbac import Grant, RbacModel, grant_drift, show_grants_rows
from expert.runtime.snowflake_ddl import GrantTarget, Privilege

READ = Grant(Privilege.SELECT, GrantTarget.ALL_TABLES_IN_SCHEMA, "DB.CORE")


def _model() -> RbacModel:
    return RbacModel.build(
        {"ACCOUNTADMIN": ("SYSADMIN",), "SYSADMIN": ()},
        {"AR_READ": (READ,), "AR_ONE": (Grant(Privilege.SELECT, GrantTarget.TABLE, "DB.OTHER.T"),)},
        {"FR_ANALYST": ("AR_READ",), "FR_SECRET": ("AR_ONE",)},
        {"FR_ANALYST": "SYSADMIN", "FR_SECRET": None},
    )


def test_closure_is_transitive_and_includes_public() -> None:
    model = _model()
    assert model.closure("ACCOUNTADMIN") == {"ACCOUNTADMIN", "SYSADMIN", "FR_ANALYST", "AR_READ", "PUBLIC"}
    assert model.effective("ACCOUNTADMIN") == {READ}
    assert model.can_select("ACCOUNTADMIN", "DB.CORE.ORDERS")
    assert not model.can_select("ACCOUNTADMIN", "DB.OTHER.T"), "FR_SECRET rolls up to no one"
    assert model.can_select("FR_SECRET", "DB.OTHER.T") and not model.can_select("FR_SECRET", "DB.OTHER.U")


def test_statements_create_only_custom_roles_and_grant_in_order() -> None:
    sql = [s.to_sql() for s in _model().statements()]
    assert sql[:4] == ["CREATE ROLE IF NOT EXISTS AR_ONE", "CREATE ROLE IF NOT EXISTS AR_READ",
                       "CREATE ROLE IF NOT EXISTS FR_ANALYST", "CREATE ROLE IF NOT EXISTS FR_SECRET"]  # fmt: skip
    assert "GRANT ROLE FR_ANALYST TO ROLE SYSADMIN" in sql
    assert not any("CREATE ROLE IF NOT EXISTS SYSADMIN" in s for s in sql)


def test_a_copy_is_independent() -> None:
    model = _model()
    changed = model.copy()
    changed.children["FR_ANALYST"].add("AR_ONE")
    assert "AR_ONE" not in model.children["FR_ANALYST"]


def test_drift_reports_both_directions() -> None:
    model = _model()
    expected = show_grants_rows(model, ["DB.CORE.ORDERS"])
    assert {
        "PRIVILEGE": "SELECT",
        "GRANTED_ON": "TABLE",
        "NAME": "DB.CORE.ORDERS",
        "GRANTEE_NAME": "AR_READ",
    } in expected
    observed = [
        *expected[1:],
        {"PRIVILEGE": "select", "GRANTED_ON": "table", "NAME": "x.y.z", "GRANTEE_NAME": "fr_analyst"},
    ]
    missing, extra = grant_drift(expected, observed)
    first = expected[0]
    assert missing == {(first["PRIVILEGE"], first["GRANTED_ON"], first["NAME"].upper(), first["GRANTEE_NAME"])}
    assert extra == {("SELECT", "TABLE", "X.Y.Z", "FR_ANALYST")}
