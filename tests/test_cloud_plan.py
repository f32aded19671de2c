"""The saved cloud plan: every Snowflake statement parses as Snowflake SQL, stand-ins are left out,
cloud-only statements are explained, and the non-SQL steps are saved whole."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import sqlglot
from sqlglot.errors import ParseError

from expert.runtime.cloud_plan import MARKDOWN_FILE, SQL_FILE, inline_params, markdown, statement_text, worksheet
from expert.runtime.pattern import curriculum
from expert.runtime.report import PlanEntry, SessionTranscript, StatementRecord

SNOWFLAKE_PATTERNS = [m for m in curriculum() if "snowflake" in m.needs]

SQLGLOT_GAPS = {
    "CREATE OR REPLACE ROW ACCESS POLICY": "sqlglot 30.22 has no parser for row access policies",
}
"""Statement kinds sqlglot cannot parse although Snowflake accepts them, each with the reason."""


def test_parameters_are_written_as_the_connector_binds_them() -> None:
    sql = inline_params("SELECT %s, %s, %s WHERE x IN (%s) AND y LIKE 'a%%'", ("it's", None, 3, [1, 2]))
    assert sql == "SELECT 'it\\'s', NULL, 3 WHERE x IN (1,2) AND y LIKE 'a%'"
    assert inline_params("SELECT %(day)s", {"day": dt.date(2024, 1, 2)}) == "SELECT '2024-01-02'"
    assert inline_params("SELECT '100%'", None) == "SELECT '100%'", "without parameters nothing is formatted"


def test_worksheet_marks_cloud_only_and_leaves_stand_ins_out() -> None:
    transcript = SessionTranscript(
        "SHOP",
        "RAW",
        "local",
        (
            StatementRecord("CREATE TABLE T (A INT)", "query", True),
            StatementRecord("INSERT INTO OFFSETS VALUES (%s)", "query", True, (7,), stand_in="Snowflake streams"),
            StatementRecord(
                "CREATE STREAM S ON TABLE T", "cloud-only (recorded)", True, note="stream. Not run here: no"
            ),
            StatementRecord("write_pandas -> T (3 rows)", "load", True),
        ),
    )
    text = worksheet([transcript])
    assert "USE SCHEMA SHOP.RAW;" in text and "CREATE TABLE T (A INT);" in text
    assert "INSERT INTO OFFSETS" not in text
    assert "1 statement(s) of the local stand-in for Snowflake streams left out" in text
    assert "-- CLOUD-ONLY: stream. Not run here: no\nCREATE STREAM S ON TABLE T;" in text
    assert "-- write_pandas -> T (3 rows)" in text
    assert statement_text("SELECT 1;;  ") == "SELECT 1;"


def test_markdown_saves_every_non_sql_step_whole() -> None:
    payload = '{\n  "name": "job",\n  "tasks": []\n}'
    page = markdown(
        "x/01 · t", [PlanEntry("databricks", "job", payload, "no workspace", "deploy", "json")], 0, "spark: local"
    )
    assert "```json\n" + payload + "\n```" in page and "Not run here: no workspace" in page


@pytest.mark.slow
@pytest.mark.parametrize("meta", SNOWFLAKE_PATTERNS, ids=lambda m: m.id)
def test_every_saved_snowflake_statement_parses(meta, pattern_run) -> None:  # type: ignore[no-untyped-def]
    outcome = pattern_run(meta.id)
    assert outcome.exit_code == 0, outcome.report.error
    assert (outcome.workdir / MARKDOWN_FILE).is_file()
    if any(e.service == "snowflake" and not e.executed for e in outcome.report.cloud_plan):
        assert (outcome.workdir / SQL_FILE).is_file()
    failures = []
    statements = 0
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    for transcript in outcome.report.snowflake_transcripts:
        for record in transcript.statements:
            if record.stand_in or record.category == "load":
                continue
            sql = statement_text(inline_params(record.sql, record.params))  # type: ignore[arg-type]
            statements += 1
            try:
                sqlglot.parse(sql, read="snowflake")
            except ParseError as exc:
                if not any(sql.upper().startswith(prefix) for prefix in SQLGLOT_GAPS):
                    failures.append(f"{sql[:120]}… {str(exc).splitlines()[0]}")
    assert not failures, failures
    cloud_only = sum(e.service == "snowflake" and not e.executed for e in outcome.report.cloud_plan)
    assert statements >= cloud_only, "every Snowflake cloud-only statement is in a session transcript"
