"""The Snowflake factory: local engine, the cloud path over the network, the cloud-only record."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from expert.runtime.config import SNOWFLAKE, resolve_service
from expert.runtime.errors import ExpertError
from expert.runtime.snowflake import snowflake_session
from expert.runtime.snowflake_ddl import (
    MaskingPolicy,
    NetworkPolicy,
    PrivilegeGrant,
    ResourceMonitor,
    Role,
    Task,
    Warehouse,
    WarehouseSize,
)


def test_local_session_writes_pandas_and_queries(snowflake_local) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame({"ID": [1, 2, 3], "AMOUNT": [10.5, 20.0, 30.25]})
    assert snowflake_local.write_pandas(frame, "ORDERS") == 3
    rows = snowflake_local.fetch("SELECT COUNT(*) AS N, SUM(AMOUNT) AS TOTAL FROM ORDERS")
    assert rows == [{"N": 3, "TOTAL": 60.75}]
    assert snowflake_local.is_local
    assert [e.category for e in snowflake_local.audit] == ["load", "query"]


def test_local_databases_persist_in_the_workdir(workdir: Path) -> None:
    config = resolve_service(SNOWFLAKE, {})
    with snowflake_session(config, db_path=workdir / "sf", database="PERSIST") as first:
        first.execute("CREATE TABLE KEPT AS SELECT 42 AS ANSWER")
    with snowflake_session(config, db_path=workdir / "sf", database="PERSIST") as second:
        assert second.scalar("SELECT ANSWER FROM KEPT") == 42
    assert any(p.name.lower().startswith("persist") for p in (workdir / "sf").iterdir())


def test_cloud_only_statements_are_recorded_in_order_not_executed(snowflake_local) -> None:  # type: ignore[no-untyped-def]
    statements = [
        Warehouse(name="transform_wh", size=WarehouseSize.SMALL, auto_suspend_seconds=60),
        Role(name="analyst"),
        PrivilegeGrant(privileges=["USAGE"], on="WAREHOUSE", object_name="transform_wh", to_role="analyst"),
    ]
    records = [snowflake_local.cloud_only(s, purpose="demo") for s in statements]
    assert [r.kind for r in snowflake_local.ledger] == ["warehouse", "role", "grant"]
    assert not any(r.executed for r in records)
    assert records[0].sql.startswith("CREATE WAREHOUSE IF NOT EXISTS TRANSFORM_WH")
    assert "AUTO_SUSPEND = 60" in records[0].sql
    assert records[2].sql == "GRANT USAGE ON WAREHOUSE TRANSFORM_WH TO ROLE ANALYST"
    assert all(r.reason for r in records)
    # The local engine really cannot run them: recording is not hiding a statement that would work.
    with pytest.raises(Exception, match=r"(?i)syntax error"):
        snowflake_local.execute(records[0].sql)


def test_typed_definitions_reject_typos_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="auto_suspned"):
        Warehouse(name="wh", auto_suspned=60)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Warehouse(name="wh", size="HUGE")
    with pytest.raises(ValidationError, match="identifier"):
        Role(name="drop table x;--")
    with pytest.raises(ValidationError, match="object name"):
        PrivilegeGrant(privileges=["SELECT"], on="TABLE", to_role="analyst")
    with pytest.raises(ValidationError):
        NetworkPolicy(name="corp", allowed_ip_list=["10.0.0.300/24"])
    with pytest.raises(ValidationError, match="schedule"):
        Task(name="t", schedule="every five minutes", body="SELECT 1")


def test_ddl_rendering_and_credit_model() -> None:
    assert [s.credits_per_hour for s in list(WarehouseSize)[:5]] == [1, 2, 4, 8, 16]
    monitor = ResourceMonitor(
        name="monthly_cap",
        credit_quota=100,
        triggers=[{"percent": 80, "action": "NOTIFY"}, {"percent": 100, "action": "SUSPEND"}],
    )
    assert "TRIGGERS ON 80 PERCENT DO NOTIFY ON 100 PERCENT DO SUSPEND" in monitor.to_sql()
    policy = MaskingPolicy(name="mask_email", body="CASE WHEN CURRENT_ROLE() = 'PII_READER' THEN val ELSE '***' END")
    assert policy.to_sql().startswith("CREATE OR REPLACE MASKING POLICY MASK_EMAIL AS (VAL STRING) RETURNS STRING")


@pytest.fixture(scope="module")
def fakesnow_server() -> Iterator[dict]:
    from expert.runtime.snowflake import local_server

    with local_server() as kwargs:
        yield kwargs


def _server_config(kwargs: dict) -> object:
    return resolve_service(
        SNOWFLAKE,
        {
            "SNOWFLAKE_ACCOUNT": kwargs["account"],
            "SNOWFLAKE_USER": kwargs["user"],
            "SNOWFLAKE_PASSWORD": kwargs["password"],
            "SNOWFLAKE_HOST": kwargs["host"],
            "SNOWFLAKE_PORT": str(kwargs["port"]),
            "SNOWFLAKE_PROTOCOL": kwargs["protocol"],
        },
    )


def test_cloud_code_path_talks_to_a_server_over_the_network(fakesnow_server: dict, workdir: Path) -> None:
    config = _server_config(fakesnow_server)
    with snowflake_session(config, db_path=workdir / "unused", database="NET") as session:  # type: ignore[arg-type]
        assert session.mode == "cloud"
        session.execute("CREATE OR REPLACE TABLE T (ID INT, NAME VARCHAR)")
        session.execute("INSERT INTO T VALUES (%s, %s), (%s, %s)", (1, "a", 2, "b"))
        assert session.fetch("SELECT COUNT(*) AS N FROM T") == [{"N": 2}]
        assert list(session.fetch_df("SELECT NAME FROM T ORDER BY ID")["NAME"]) == ["a", "b"]
        # In cloud mode a cloud-only statement is sent to the account, not recorded: the fake
        # server rejects CREATE WAREHOUSE, which proves it was executed remotely.
        with pytest.raises(Exception, match=r"(?i)syntax error|WAREHOUSE"):
            session.cloud_only(Warehouse(name="wh"))
        assert not session.ledger
    assert not (workdir / "unused").exists()


def test_unreachable_snowflake_host_fails_fast_with_a_plain_message(workdir: Path) -> None:
    config = resolve_service(
        SNOWFLAKE,
        {
            "SNOWFLAKE_ACCOUNT": "acct",
            "SNOWFLAKE_USER": "me",
            "SNOWFLAKE_PASSWORD": "never-printed-secret",
            "SNOWFLAKE_HOST": "127.0.0.1",
            "SNOWFLAKE_PORT": "9",
            "SNOWFLAKE_PROTOCOL": "http",
            "SNOWFLAKE_LOGIN_TIMEOUT": "5",
        },
    )
    started = time.perf_counter()
    with pytest.raises(ExpertError) as err, snowflake_session(config, db_path=workdir):  # type: ignore[arg-type]
        pass
    assert time.perf_counter() - started < 60
    assert "could not connect to Snowflake at 127.0.0.1" in err.value.message
    assert "never-printed-secret" not in str(err.value)


def test_an_endpoint_travels_by_pickle_and_its_local_tables_outlive_the_server(workdir: Path) -> None:
    """What a Spark Connect worker relies on: the unpickled endpoint reaches the same tables, and the
    run's Snowflake files can be opened in-process after the server is gone."""
    import cloudpickle

    from expert.runtime.snowflake import snowflake_endpoint

    config = resolve_service(SNOWFLAKE, {})
    with snowflake_endpoint(config, db_path=workdir / "snowflake", schema="SHIPPED") as endpoint:
        assert "password" not in repr(endpoint), "the connection arguments (a secret among them) stay out of reprs"
        shipped = cloudpickle.loads(cloudpickle.dumps(endpoint))
        with endpoint.session() as driver, shipped.session() as worker:
            driver.execute("CREATE OR REPLACE TABLE T (ID INT)")
            worker.execute("INSERT INTO T VALUES (1), (2)")
            assert driver.scalar("SELECT COUNT(*) FROM T") == 2
    with snowflake_session(config, db_path=workdir / "snowflake", schema="SHIPPED") as after:
        assert after.scalar("SELECT COUNT(*) FROM T") == 2
