"""The Snowflake patterns on the cloud code path (fakesnow's server standing in for an account):
a table the run did not create survives every pattern, and a run refuses to drop what is not its own.

The local server runs what it can; each run stops at the first statement it cannot (a stream, a
network policy, ACCOUNT_USAGE). What matters here is what each run did, or refused to do, to
the objects that were there before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector

from expert.runtime.pattern import REPORTS, load_module, select_patterns
from expert.runtime.report import RunReport
from expert.runtime.snowflake import local_server
from expert.runtime.snowflake_ownership import REGISTRY

BEFORE = ("TEAM.PUBLIC", "TEAM.RAW", "TEAM.CORE", "TEAM.GOVERNANCE", "SHOP_PII.CORE")
"""Schemas someone else owns: in the database SNOWFLAKE_DATABASE names, and 03's own (fixed) database."""


@pytest.fixture
def account(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The local server as the account in `.env`, holding a table in each schema of BEFORE."""
    monkeypatch.setenv("EXPERT_WORK_ROOT", str(workdir / "work"))  # leave the cached local runs' workdirs alone
    with local_server(workdir / "server") as kwargs:
        with snowflake.connector.connect(**kwargs) as connection:
            for schema in BEFORE:
                database = schema.split(".")[0]
                for sql in (f"CREATE DATABASE IF NOT EXISTS {database}", f"CREATE SCHEMA IF NOT EXISTS {schema}",
                            f"CREATE TABLE {schema}.KEEP (ID INT)", f"INSERT INTO {schema}.KEEP VALUES (42)"):  # fmt: skip
                    connection.cursor().execute(sql)
        for key, value in (("ACCOUNT", kwargs["account"]), ("USER", kwargs["user"]), ("PASSWORD", kwargs["password"]),
                           ("HOST", kwargs["host"]), ("PORT", str(kwargs["port"])), ("PROTOCOL", kwargs["protocol"])):  # fmt: skip
            monkeypatch.setenv(f"SNOWFLAKE_{key}", value)
        yield kwargs


def run(pattern: str, *argv: str) -> RunReport:
    (meta,) = select_patterns(pattern)
    load_module(meta).main(["--quiet", *argv])
    return REPORTS[-1]


def kept(kwargs: dict[str, Any]) -> dict[str, int | None]:
    """The rows of each KEEP table (None: the table is gone)."""
    out: dict[str, int | None] = {}
    with snowflake.connector.connect(**kwargs) as connection:
        for schema in BEFORE:
            try:
                out[schema] = connection.cursor().execute(f"SELECT MAX(ID) FROM {schema}.KEEP").fetchone()[0]  # type: ignore[index,union-attr]
            except snowflake.connector.errors.ProgrammingError:
                out[schema] = None
    return out


def executed(report: RunReport) -> list[str]:
    return [s.sql for t in report.snowflake_transcripts for s in t.statements if s.ok]


def test_tables_the_runs_did_not_create_survive_every_pattern(account: dict[str, Any], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SNOWFLAKE_DATABASE", "TEAM")
    reports = {pattern: run(pattern) for pattern in ("snowflake/01", "snowflake/02", "snowflake/03")}
    assert kept(account) == dict.fromkeys(BEFORE, 42)
    for pattern, schema in (("snowflake/01", "TEAM.RAW"), ("snowflake/03", "SHOP_PII.CORE")):
        report = reports[pattern]
        assert report.exit_code == 2, report.error
        assert (
            f"{pattern} would drop SCHEMA {schema}, which exists and was not created by these patterns" in report.error
        )
        assert "--reset-existing" in report.error
        assert not any(sql.startswith("DROP") for sql in executed(report)), "refused before it was sent"
    assert reports["snowflake/02"].error.startswith("cannot read SNOWFLAKE.ACCOUNT_USAGE"), "02 drops nothing"


def test_reset_existing_lets_a_run_replace_what_was_there(account: dict[str, Any], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SNOWFLAKE_DATABASE", "TEAM")
    report = run("snowflake/01", "--reset-existing")
    assert "CREATE STAGE IF NOT EXISTS RAW.LANDING" in executed(report), "the run got past its layout"
    assert kept(account) == {**dict.fromkeys(BEFORE, 42), "TEAM.RAW": None, "TEAM.CORE": None}


def test_a_run_owns_the_database_it_creates_and_a_rerun_may_reset_it(account: dict[str, Any]) -> None:
    first, second = run("snowflake/01"), run("snowflake/01")
    for report in (first, second):
        assert "CREATE STAGE IF NOT EXISTS RAW.LANDING" in executed(report), report.error
    with snowflake.connector.connect(**account) as connection:
        owned = connection.cursor().execute(f"SELECT OBJECT_KIND, OBJECT_NAME, PATTERN FROM SHOP.PUBLIC.{REGISTRY}")
        assert ("DATABASE", "SHOP", "snowflake/01") in owned.fetchall()  # type: ignore[union-attr]
    assert kept(account) == dict.fromkeys(BEFORE, 42)
