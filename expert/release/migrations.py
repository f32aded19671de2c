"""schemachange, the Snowflake migration tool, run in-process against one database, and its history read back.

Why: a schema changed by hand cannot be reviewed, repeated or rolled forward in another
environment. schemachange applies versioned scripts (`V1.2.0__...sql`) once each, in order, and
repeatable ones (`R__...sql`) when they change, recording each in a change-history table. It is
configured through `SNOWFLAKE_*` environment variables: the local Snowflake server's, or the
account's from `.env`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from expert.release.serve import CANDIDATE_SCHEMA
from expert.runtime.timing import stopwatch

if TYPE_CHECKING:
    from expert.runtime.config import ServiceConfig
    from expert.runtime.contracts import DataContract
    from expert.runtime.pattern import PatternRun
    from expert.runtime.snowflake import SnowflakeEndpoint, SnowflakeSession

NOT_FOR_SCHEMACHANGE = ("SNOWFLAKE_DATABASE", "SNOWFLAKE_SCHEMA", "SNOWFLAKE_LOGIN_TIMEOUT")
"""Settings of this project that schemachange does not read (it takes the database as `-d`)."""


def local_server_environment(server: Mapping[str, Any]) -> dict[str, str]:
    """The SNOWFLAKE_* variables schemachange reads, for the local Snowflake server on 127.0.0.1."""
    return {
        "SNOWFLAKE_ACCOUNT": server["account"],
        "SNOWFLAKE_USER": server["user"],
        "SNOWFLAKE_PASSWORD": server["password"],
        "SNOWFLAKE_HOST": server["host"],
        "SNOWFLAKE_PORT": str(server["port"]),
        "SNOWFLAKE_PROTOCOL": server["protocol"],
        "SNOWFLAKE_SESSION_PARAMETERS": json.dumps(server["session_parameters"]),
    }


def account_environment(config: ServiceConfig) -> dict[str, str]:
    """The SNOWFLAKE_* variables schemachange reads, for the account configured in `.env`."""
    env = {}
    for key in config.spec.keys:
        if key in NOT_FOR_SCHEMACHANGE:
            continue
        secret = config.secret(key) if key in config.spec.secrets else None
        value = secret.get_secret_value() if secret is not None else config.get(key)
        if value:
            env[key] = value
    return env


@contextlib.contextmanager
def stdout_to(path: Path) -> Iterator[None]:
    """Send file descriptor 1 to a log (schemachange's structlog writes to the original stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with path.open("a") as log:
        os.dup2(log.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


@dataclass(frozen=True)
class MigrationRun:
    """One `schemachange deploy`: its exit code and how many scripts it recorded as applied."""

    database: str
    exit_code: int
    applied: int
    seconds: float


def schemachange_deploy(
    env: Mapping[str, str], database: str, migrations: Path, log: Path, session: SnowflakeSession
) -> MigrationRun:
    """Run schemachange's own `deploy` command (in-process) against one database.

    `session` reads the change-history table before and after, on the same Snowflake.
    """
    from schemachange.cli import main as schemachange_main

    table = f"{database}.SCHEMACHANGE.CHANGE_HISTORY"
    before = history_count(session, table)
    argv = ["schemachange", "deploy", "--config-folder", str(migrations.parent), "--root-folder", str(migrations)]
    argv += ["-d", database, "-c", table, "--create-change-history-table", "-L", "INFO"]
    saved_env = {k: os.environ.get(k) for k in env}
    saved_argv = sys.argv
    code = 0
    with stopwatch() as watch:
        try:
            os.environ.update(env)
            sys.argv = argv
            with stdout_to(log):
                schemachange_main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            sys.argv = saved_argv
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return MigrationRun(database, code, history_count(session, table) - before, watch.seconds)


def history_count(session: SnowflakeSession, table: str) -> int:
    """Successful scripts recorded in a change-history table (0 before its first deploy)."""
    import snowflake.connector

    try:
        return int(session.scalar(f"SELECT COUNT(*) FROM {table} WHERE STATUS = 'Success'"))
    except snowflake.connector.errors.ProgrammingError:
        return 0


class MigrationTarget(NamedTuple):
    """Where a run migrates and serves: schemachange's environment, a session, and an endpoint for dbt."""

    env: dict[str, str]
    session: SnowflakeSession
    endpoint: SnowflakeEndpoint


@contextlib.contextmanager
def migration_target(run: PatternRun, databases: Sequence[str], database: str) -> Iterator[MigrationTarget]:
    """The schemachange environment, a session on the same Snowflake (the account, or the local
    server) and an endpoint to `database` for tools in their own process (dbt).

    Locally, fakesnow's Snowflake server on 127.0.0.1 (schemachange needs a real connection); its
    in-memory account lives as long as the process, so the schemas a run migrates are dropped first.
    """
    import snowflake.connector

    from expert.runtime.snowflake import SnowflakeEndpoint, SnowflakeSession, _cloud_kwargs, local_server

    if run.settings.snowflake.is_cloud:
        endpoint = SnowflakeEndpoint("cloud", database, "GOLD", _cloud_kwargs(run.settings.snowflake, database, "GOLD"))
        with run.snowflake(database=database, schema="PUBLIC") as session:
            yield MigrationTarget(account_environment(run.settings.snowflake), session, endpoint)
        return
    with local_server() as server:
        connection = snowflake.connector.connect(**server)
        try:
            session = SnowflakeSession(connection, "local", database, "PUBLIC", run.narrator)
            for name in databases:
                for schema in ("GOLD", "SCHEMACHANGE", CANDIDATE_SCHEMA):
                    session.execute(f"DROP SCHEMA IF EXISTS {name}.{schema} CASCADE")
            endpoint = SnowflakeEndpoint("local", database, "GOLD", server)
            yield MigrationTarget(local_server_environment(server), session, endpoint)
        finally:
            connection.close()


def missing_contract_columns(
    session: SnowflakeSession, database: str, served: Mapping[str, str], contracts: Mapping[str, DataContract]
) -> dict[str, tuple[list[str], int]]:
    """For each served table (Delta table → Snowflake GOLD table): the contract columns Snowflake lacks,
    and how many columns it has."""
    missing = {}
    for table, snowflake_table in served.items():
        columns = {
            r["COLUMN_NAME"].lower()
            for r in session.fetch(
                f"SELECT COLUMN_NAME FROM {database}.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'GOLD' AND TABLE_NAME = %s",
                (snowflake_table,),
            )
        }
        missing[snowflake_table] = ([c.name for c in contracts[table].columns if c.name not in columns], len(columns))
    return missing
