"""The full cloud plan of a run, saved beside its tables: what a real account would execute.

Why: a learner who wants to take a pattern to a real account needs the statements, not a count.
Every run leaves two files in its workdir:

- `cloud-plan.sql`, when the run has Snowflake cloud-only statements: every statement its
  Snowflake sessions issued, in order, each ending with `;`, with the statements the local
  engine could not run marked and explained in a comment above them, and the statements of a
  local stand-in left out (the feature they stand in for is named instead). Bound parameters are
  written in as literals, so the file runs as one worksheet.
- `cloud-plan.md`: the Databricks, Terraform, workflow and other payloads (anything not SQL), in
  order, each in a fenced block of its language, with a pointer to the SQL file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from snowflake.connector.converter import SnowflakeConverter

from expert.runtime.report import PlanEntry, RunReport, SessionTranscript, StatementRecord

SQL_FILE = "cloud-plan.sql"
MARKDOWN_FILE = "cloud-plan.md"

CLOUD_ONLY_CATEGORIES = {"cloud-only (recorded)": "cloud-only", "recommended (not applied)": "recommended"}


def sql_literal(value: Any) -> str:
    """A Python value as the SQL literal the connector's client-side binding sends for it."""
    converter = SnowflakeConverter()
    return str(converter.quote(converter.escape(converter.to_snowflake(value))))


def inline_params(sql: str, params: Sequence[Any] | Mapping[str, Any] | None) -> str:
    """`sql` with its `%s` / `%(name)s` parameters replaced by literals, as the connector binds them."""
    if params is None:
        return sql
    if isinstance(params, Mapping):
        return sql % {key: sql_literal(value) for key, value in params.items()}
    return sql % tuple(sql_literal(value) for value in params)


def statement_text(sql: str) -> str:
    """One statement, ending with exactly one `;`."""
    return sql.strip().rstrip(";").rstrip() + ";"


def worksheet(transcripts: Iterable[SessionTranscript]) -> str:
    """Every statement of the run's Snowflake sessions as one worksheet, stand-ins left out."""
    out: list[str] = []
    cloud_only = 0
    total = 0
    for transcript in transcripts:
        out += [
            f"-- Session on {transcript.database}.{transcript.schema} ({transcript.mode} run).",
            statement_text(f"CREATE DATABASE IF NOT EXISTS {transcript.database}"),
            statement_text(f"CREATE SCHEMA IF NOT EXISTS {transcript.database}.{transcript.schema}"),
            statement_text(f"USE SCHEMA {transcript.database}.{transcript.schema}"),
            "",
        ]
        skipped: dict[str, int] = {}
        for record in transcript.statements:
            if record.stand_in:
                skipped[record.stand_in] = skipped.get(record.stand_in, 0) + 1
                continue
            for feature, count in skipped.items():
                out.append(
                    f"-- ({count} statement(s) of the local stand-in for {feature} left out: an account runs the real feature)"
                )
            skipped.clear()
            block = _statement_block(record)
            if block:
                total += 1
                cloud_only += record.category in CLOUD_ONLY_CATEGORIES
                out += [*block, ""]
        for feature, count in skipped.items():
            out.append(
                f"-- ({count} statement(s) of the local stand-in for {feature} left out: an account runs the real feature)"
            )
    head = [
        "-- The cloud plan: every Snowflake statement this run issued, in order, as one worksheet.",
        f"-- {total} statements; {cloud_only} of them could not run on the local engine and are marked CLOUD-ONLY.",
        "-- Statements marked RECOMMENDED change account-wide settings: review them before running.",
        "-- Written by the pattern run; rerun the pattern to refresh it.",
        "",
    ]
    return "\n".join(head + out).rstrip() + "\n"


def _statement_block(record: StatementRecord) -> list[str]:
    if record.category == "load":
        return [f"-- {record.sql}: the connector's write_pandas stages a Parquet file and runs COPY INTO."]
    sql = statement_text(inline_params(record.sql, record.params))  # type: ignore[arg-type]
    label = CLOUD_ONLY_CATEGORIES.get(record.category)
    if label == "cloud-only":
        return [f"-- CLOUD-ONLY: {record.note}" if record.note else "-- CLOUD-ONLY", sql]
    if label == "recommended":
        return [f"-- RECOMMENDED (review before running): {record.note}" if record.note else "-- RECOMMENDED", sql]
    if not record.ok:
        return ["-- This statement failed in the local run; the lesson expects it to fail (see the step).", sql]
    return [sql]


def markdown(title: str, entries: Sequence[PlanEntry], snowflake_statements: int, modes: str) -> str:
    """The non-SQL cloud steps (jobs, bundles, Terraform, workflow, REST calls) as a Markdown page."""
    lines = [f"# Cloud plan: {title}", "", f"Engines in this run: {modes or 'local'}.", ""]
    if snowflake_statements:
        lines += [
            f"The Snowflake statements ({snowflake_statements} cloud-only among them) are in "
            f"[`{SQL_FILE}`]({SQL_FILE}), in the order the run issued them.",
            "",
        ]
    others = [e for e in entries if e.service != "snowflake"]
    if not others:
        lines.append("This pattern has no cloud step outside Snowflake SQL.")
    for number, entry in enumerate(others, start=1):
        status = "executed" if entry.executed else "not executed here"
        lines += [f"## {number}. {entry.service}: {entry.kind} ({status})", ""]
        if entry.purpose:
            lines += [f"For: {entry.purpose}", ""]
        if entry.reason and not entry.executed:
            lines += [f"Not run here: {entry.reason}", ""]
        fence = "```" if "```" not in entry.text else "````"
        lines += [f"{fence}{entry.language}", entry.text.strip(), fence, ""]
    return "\n".join(lines).rstrip() + "\n"


def write_cloud_plan(workdir: Path, report: RunReport, modes: str) -> list[Path]:
    """Write `cloud-plan.md` always, and `cloud-plan.sql` when the run has Snowflake cloud-only statements."""
    written: list[Path] = []
    snowflake_cloud_only = sum(1 for e in report.cloud_plan if e.service == "snowflake" and not e.executed)
    if snowflake_cloud_only:
        path = workdir / SQL_FILE
        path.write_text(worksheet(report.snowflake_transcripts))
        written.append(path)
    path = workdir / MARKDOWN_FILE
    path.write_text(markdown(f"{report.pattern_id} · {report.title}", report.cloud_plan, snowflake_cloud_only, modes))
    written.append(path)
    return written
