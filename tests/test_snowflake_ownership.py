"""The ownership guard on the cloud code path, against fakesnow's server: never touch what a run did not create."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector

from expert.runtime.config import SNOWFLAKE, ServiceConfig, resolve_service
from expert.runtime.errors import ExpertError
from expert.runtime.snowflake import local_server, snowflake_session
from expert.runtime.snowflake_ddl import NetworkPolicy
from expert.runtime.snowflake_ownership import REGISTRY, classify


@pytest.fixture
def server(workdir: Path) -> Iterator[dict[str, Any]]:
    """The local server with its own engine (databases as files in this test's workdir)."""
    with local_server(workdir / "server") as kwargs:
        yield kwargs


def cloud(kwargs: dict[str, Any], **extra: str) -> ServiceConfig:
    """A cloud configuration that reaches the local server."""
    keys = {"SNOWFLAKE_ACCOUNT": kwargs["account"], "SNOWFLAKE_USER": kwargs["user"],
            "SNOWFLAKE_PASSWORD": kwargs["password"], "SNOWFLAKE_HOST": kwargs["host"],
            "SNOWFLAKE_PORT": str(kwargs["port"]), "SNOWFLAKE_PROTOCOL": kwargs["protocol"]}  # fmt: skip
    return resolve_service(SNOWFLAKE, {**keys, **extra})


def someone_elses(kwargs: dict[str, Any], *statements: str) -> None:
    """Objects created outside the patterns (by a direct connection, as a colleague would)."""
    with snowflake.connector.connect(**kwargs) as connection:
        for sql in statements:
            connection.cursor().execute(sql)


def test_statements_are_classified() -> None:
    def seen(sql: str) -> tuple[str, str, str] | None:
        statement = classify(sql)
        return None if statement is None else (statement.verb, statement.kind, statement.name)

    assert seen("DROP SCHEMA IF EXISTS RAW CASCADE") == ("drop", "SCHEMA", "RAW")
    assert seen("create or replace  masking policy g.pii_mask as (v string)") == (
        "replace",
        "MASKING POLICY",
        "g.pii_mask",
    )
    assert seen("CREATE OR REPLACE TRANSIENT TABLE a.b.c (x int)") == ("replace", "TABLE", "a.b.c")
    assert seen("CREATE OR REPLACE DATABASE SHOP_DEV CLONE SHOP") == ("replace", "DATABASE", "SHOP_DEV")
    assert seen("TRUNCATE TABLE IF EXISTS T") == ("truncate", "TABLE", "T")
    assert seen("CREATE DATABASE IF NOT EXISTS SHOP") == ("create", "DATABASE", "SHOP")
    assert seen("CREATE TABLE IF NOT EXISTS T (X INT)") is None, "creating a table replaces nothing"
    assert seen("SELECT 'DROP SCHEMA X'") is None


def test_what_a_run_created_it_may_drop_and_a_rerun_still_may(server: dict[str, Any], workdir: Path) -> None:
    config = cloud(server)
    with snowflake_session(config, db_path=workdir, database="FRESH", schema="RAW", owner="snowflake/01") as session:
        session.execute("CREATE OR REPLACE TABLE T (ID INT)")
        session.execute("CREATE SCHEMA IF NOT EXISTS CORE")
        session.execute("DROP SCHEMA IF EXISTS CORE CASCADE")
        rows = session.fetch(f"SELECT OBJECT_KIND, OBJECT_NAME, PATTERN FROM FRESH.PUBLIC.{REGISTRY}")
    assert {"OBJECT_KIND": "DATABASE", "OBJECT_NAME": "FRESH", "PATTERN": "snowflake/01"} in rows
    with snowflake_session(config, db_path=workdir, database="FRESH", schema="RAW", owner="snowflake/01") as rerun:
        rerun.execute("DROP SCHEMA IF EXISTS RAW CASCADE")  # allowed: the registry says an earlier run made FRESH


def test_an_existing_schema_it_did_not_create_is_refused(server: dict[str, Any], workdir: Path) -> None:
    someone_elses(server, "CREATE DATABASE TEAM", "CREATE SCHEMA TEAM.RAW", "CREATE TABLE TEAM.RAW.KEEP (ID INT)",
                  "INSERT INTO TEAM.RAW.KEEP VALUES (1)")  # fmt: skip
    config = cloud(server, SNOWFLAKE_DATABASE="TEAM")
    with snowflake_session(config, db_path=workdir, database="SHOP", schema="PUBLIC", owner="snowflake/01") as session:
        with pytest.raises(ExpertError) as refused:
            session.execute("DROP SCHEMA IF EXISTS RAW CASCADE")
        assert "drop SCHEMA TEAM.RAW" in refused.value.message and "--reset-existing" in refused.value.message
        assert refused.value.exit_code == 2
        with pytest.raises(ExpertError, match=r"replace TABLE TEAM\.RAW\.KEEP"):
            session.execute("CREATE OR REPLACE TABLE TEAM.RAW.KEEP (OTHER VARCHAR)")
        session.execute("CREATE OR REPLACE TABLE TEAM.RAW.MINE (ID INT)")  # new: nothing to lose
        session.execute("CREATE OR REPLACE TABLE TEAM.RAW.MINE (ID INT)")  # and the run made it, so again
        session.execute("CREATE SCHEMA IF NOT EXISTS CORE")
        session.execute("DROP SCHEMA CORE CASCADE")  # created by this run
        assert session.scalar("SELECT COUNT(*) FROM TEAM.RAW.KEEP") == 1
        assert [s.sql for s in session.audit if s.sql.startswith("DROP SCHEMA IF EXISTS RAW")] == [], "never sent"


def test_reset_existing_lets_the_run_replace_it(server: dict[str, Any], workdir: Path) -> None:
    someone_elses(server, "CREATE DATABASE TEAM", "CREATE SCHEMA TEAM.RAW", "CREATE TABLE TEAM.RAW.KEEP (ID INT)")
    config = cloud(server, SNOWFLAKE_DATABASE="TEAM")
    with snowflake_session(
        config, db_path=workdir, database="SHOP", owner="snowflake/01", reset_existing=True
    ) as session:
        session.execute("DROP SCHEMA IF EXISTS RAW CASCADE")
        assert "RAW" not in {r["NAME"] for r in session.fetch("SHOW SCHEMAS IN DATABASE TEAM")}


def test_an_account_object_whose_existence_cannot_be_read_is_refused(server: dict[str, Any], workdir: Path) -> None:
    policy = NetworkPolicy(name="CORP_ONLY_IPS", allowed_ip_list=["10.0.0.0/8"])
    with (
        snowflake_session(cloud(server), db_path=workdir, database="SEC", owner="snowflake/03") as session,
        pytest.raises(ExpertError, match="replace NETWORK POLICY CORP_ONLY_IPS, the account would not say"),
    ):
        session.execute(policy.to_sql())


def test_configured_names_must_be_identifiers(server: dict[str, Any], workdir: Path) -> None:
    config = cloud(server, SNOWFLAKE_DATABASE="x; DROP DATABASE PROD")
    with pytest.raises(ExpertError, match="SNOWFLAKE_DATABASE"), snowflake_session(config, db_path=workdir):
        pass


def test_write_pandas_overwrite_is_guarded_too(server: dict[str, Any], workdir: Path) -> None:
    import pandas as pd

    someone_elses(server, "CREATE DATABASE TEAM", "CREATE SCHEMA TEAM.PUBLIC", "CREATE TABLE TEAM.PUBLIC.SCORES (ID INT)",
                  "INSERT INTO TEAM.PUBLIC.SCORES VALUES (7)")  # fmt: skip
    frame = pd.DataFrame({"ID": [1, 2]})
    config = cloud(server, SNOWFLAKE_DATABASE="TEAM")
    with snowflake_session(config, db_path=workdir, owner="integration/03") as session:
        with pytest.raises(ExpertError, match=r"truncate TABLE TEAM\.PUBLIC\.SCORES"):
            session.write_pandas(frame, "SCORES", overwrite=True, auto_create_table=False)
        assert session.scalar("SELECT COUNT(*) FROM TEAM.PUBLIC.SCORES") == 1
        session.execute("CREATE OR REPLACE TABLE MINE (ID INT)")  # new: the run's own
        # The guard lets the overwrite of the run's own table through; the local server then stops the
        # connector itself (it has no INFER_SCHEMA, which write_pandas(overwrite=True) calls).
        with pytest.raises(snowflake.connector.errors.ProgrammingError, match=r"(?i)infer_schema"):
            session.write_pandas(frame, "MINE", overwrite=True, auto_create_table=False)
