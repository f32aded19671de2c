"""Policies evaluated per role by rewriting their bodies: the engine computes what each role would see."""

from __future__ import annotations

from expert.runtime.policy_rewrite import PolicyEvaluator, Protection, bind_role
from expert.runtime.rbac import Grant, RbacModel
from expert.runtime.snowflake_ddl import GrantTarget, MaskingPolicy, Privilege, RowAccessPolicy

MASK = MaskingPolicy(name="m", body="CASE WHEN IS_ROLE_IN_SESSION('CLEAR') THEN VAL ELSE '***' END")
ONLY_US = RowAccessPolicy(name="r", args=(("C", "VARCHAR"),), body="CURRENT_ROLE() = 'ADMIN' OR C = 'US'")


def test_policy_bodies_bind_the_role(snowflake_local) -> None:  # type: ignore[no-untyped-def]
    body = "CASE WHEN IS_ROLE_IN_SESSION('AR_PII_CLEAR') OR CURRENT_ROLE() = 'AUDITOR' THEN VAL ELSE '***' END"
    snowflake_local.execute("CREATE TABLE T (EMAIL VARCHAR)")
    snowflake_local.execute("INSERT INTO T VALUES ('a@b.com')")

    def seen(role: str, closure: set[str]) -> str:
        return snowflake_local.scalar(f"SELECT {bind_role(body, role, closure, {'VAL': 'EMAIL'})} FROM T AS t")

    assert seen("FR_ANALYST", {"FR_ANALYST", "PUBLIC"}) == "***"
    assert seen("FR_COMPLIANCE", {"FR_COMPLIANCE", "AR_PII_CLEAR"}) == "a@b.com"
    assert seen("AUDITOR", {"AUDITOR"}) == "a@b.com"


def test_evaluator_counts_rows_and_clear_values_per_role(snowflake_local) -> None:  # type: ignore[no-untyped-def]
    snowflake_local.execute("CREATE TABLE T (ID NUMBER, COUNTRY VARCHAR, EMAIL VARCHAR)")
    snowflake_local.execute("INSERT INTO T VALUES (1, 'US', 'a@x.com'), (2, 'DE', 'b@x.com'), (3, 'US', 'c@x.com')")
    table = f"{snowflake_local.database}.{snowflake_local.schema}.T"
    read = (Grant(Privilege.SELECT, GrantTarget.TABLE, table),)
    model = RbacModel.build(
        {"ADMIN": ()}, {"AR_READ": read, "CLEAR": ()}, {"READER": ("AR_READ",), "PRIVACY": ("AR_READ", "CLEAR")},
        {"READER": "ADMIN", "PRIVACY": None},
    )  # fmt: skip
    evaluator = PolicyEvaluator(
        snowflake_local, model, [Protection(table, "EMAIL", MASK)], ONLY_US, {table: {"C": "COUNTRY"}}
    )
    seen = {role: evaluator.visible(role, table) for role in ("READER", "PRIVACY", "ADMIN", "PUBLIC")}
    assert (seen["READER"]["rows"], seen["READER"]["clear"]) == (2, {"EMAIL": 0})
    assert (seen["PRIVACY"]["rows"], seen["PRIVACY"]["clear"]) == (2, {"EMAIL": 2})
    assert (seen["ADMIN"]["rows"], seen["ADMIN"]["clear"]) == (3, {"EMAIL": 0}), "ADMIN inherits READER"
    assert not seen["PUBLIC"]["select"]
    assert evaluator.clear_readers()[0] == {"PRIVACY"}
    assert evaluator.first_row("READER", table, also=("COUNTRY",), order_by="ID") == {"COUNTRY": "US", "EMAIL": "***"}
