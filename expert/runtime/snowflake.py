"""The one Snowflake session factory: the local engine by default, a real account when configured.

Local mode runs fakesnow (DuckDB) with a persistent `db_path` in the run's workdir, under the
real `snowflake-connector-python` API: `snowflake.connector.connect` and `write_pandas` are called
through their modules, exactly as against an account, so the same code runs in both modes.

Statements the local engine cannot execute (warehouses, roles and grants, policies, streams,
tasks, time travel, ...) are never silently dropped: a pattern issues them through
`SnowflakeSession.cloud_only(definition)`, which executes them on a real account and, locally,
records them with the reason they cannot run. That record (`ledger`) is what the narration
shows and what tests assert on. Every statement issued either way also lands in `audit`,
the session's local audit trail.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import snowflake.connector
import snowflake.connector.pandas_tools

from expert.runtime.config import Mode, ServiceConfig
from expert.runtime.errors import ConfigError, ExpertError
from expert.runtime.narrate import Narrator
from expert.runtime.redact import scrub
from expert.runtime.report import PlanEntry
from expert.runtime.snowflake_ddl import CloudStatement, identifier

if TYPE_CHECKING:
    import pandas as pd
    from snowflake.connector.cursor import SnowflakeCursor

    from expert.runtime.snowflake_ownership import Ownership

DEFAULT_LOGIN_TIMEOUT_S = 20

# fakesnow's Arrow fetch path warns on every pandas fetch; the copy it mentions is harmless here.
warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)


@dataclass(frozen=True)
class CloudOnlyRecord:
    """One account-level statement: what it was, why it exists, and whether it ran."""

    kind: str
    sql: str
    reason: str
    purpose: str
    executed: bool


@dataclass(frozen=True)
class AuditEntry:
    """One statement this session issued (the local twin of ACCESS_HISTORY / QUERY_HISTORY)."""

    seq: int
    sql: str
    category: str
    ok: bool
    seconds: float
    rows: int | None = None
    params: Any = None
    stand_in: str = ""
    """The cloud feature a local stand-in statement plays (empty for the statements an account runs too)."""


@dataclass
class SnowflakeSession:
    """A connection plus the cloud-only ledger and the audit trail of everything issued."""

    connection: Any
    mode: Mode
    database: str
    schema: str
    narrator: Narrator | None = None
    ledger: list[CloudOnlyRecord] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    plan: list[PlanEntry] | None = None
    """The run's cloud plan: every cloud-only record is appended to it as it happens."""
    playing: str = ""
    """While set, the statements issued are a local stand-in for this cloud feature (not in the cloud plan)."""
    ownership: Ownership | None = None
    """On an account: the guard that refuses to drop or replace what these patterns did not create."""

    @property
    def is_local(self) -> bool:
        return self.mode == "local"

    @contextlib.contextmanager
    def stand_in(self, feature: str) -> Iterator[None]:
        """Mark the statements issued in the block as a local stand-in for `feature`.

        They run (the lesson needs their results) but an account would run the real feature
        instead, so the saved cloud worksheet leaves them out and names the feature there.
        """
        previous, self.playing = self.playing, feature
        try:
            yield
        finally:
            self.playing = previous

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> SnowflakeCursor:
        """Run a statement for real (both modes) and add it to the audit trail.

        On an account with an `ownership` guard, a statement that would drop or replace an object
        these patterns did not create is refused before it runs (see `snowflake_ownership`).
        """
        created = self.ownership.before(self, sql) if self.ownership else None
        started = time.perf_counter()
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
        except Exception:
            self._audit(sql, "query", ok=False, started=started, params=params)
            raise
        self._audit(sql, "query", ok=True, started=started, rows=cursor.rowcount, params=params)
        if created is not None and self.ownership:
            self.ownership.after(self, created)
        return cursor

    def fetch(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts keyed by upper-case column name (Snowflake's default casing)."""
        cursor = self.execute(sql, params)
        names = [d[0].upper() for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def fetch_df(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """A pandas DataFrame through the connector's Arrow path (`fetch_pandas_all`)."""
        return self.execute(sql, params).fetch_pandas_all()

    def write_pandas(
        self,
        df: pd.DataFrame,
        table: str,
        *,
        overwrite: bool = False,
        auto_create_table: bool = True,
        use_logical_type: bool | None = None,
    ) -> int:
        """Bulk-load a DataFrame with the connector's `write_pandas` (a stage + COPY INTO in the cloud).

        `use_logical_type=True` makes the connector stage timestamps as Parquet logical types, which
        Snowflake needs to load pandas datetimes correctly (left unset, the connector's default).
        With `overwrite` on an account, the ownership guard first checks the table may be replaced.
        """
        created = None
        if overwrite and self.ownership:
            # The connector replaces (auto_create_table) or truncates the table itself: guard it the same way.
            replaced = f"CREATE OR REPLACE TABLE {table}" if auto_create_table else f"TRUNCATE TABLE {table}"
            created = self.ownership.before(self, replaced)
        started = time.perf_counter()
        extra: dict[str, Any] = {} if use_logical_type is None else {"use_logical_type": use_logical_type}
        success, _chunks, rows, _ = snowflake.connector.pandas_tools.write_pandas(
            self.connection,
            df,
            table,
            auto_create_table=auto_create_table,
            overwrite=overwrite,
            quote_identifiers=False,
            **extra,
        )
        self._audit(f"write_pandas -> {table} ({len(df)} rows)", "load", ok=bool(success), started=started, rows=rows)
        if not success:
            raise ExpertError(f"write_pandas into {table} reported failure", "see the audit trail")
        if created is not None and self.ownership:
            self.ownership.after(self, created)
        return int(rows)

    def cloud_only(self, statement: CloudStatement, purpose: str = "") -> CloudOnlyRecord:
        """Execute an account-level statement in the cloud; locally, record it and say why not."""
        sql = statement.to_sql()
        if self.is_local:
            record = CloudOnlyRecord(statement.kind, sql, statement.local_reason, purpose, executed=False)
            self._audit(sql, "cloud-only (recorded)", ok=True, started=time.perf_counter())
        else:
            self.execute(sql)
            record = CloudOnlyRecord(statement.kind, sql, "", purpose, executed=True)
        self._record(record)
        return record

    def cloud_only_fetch(self, statement: CloudStatement, purpose: str = "") -> list[dict[str, Any]] | None:
        """Like `cloud_only`, for a statement that returns rows (SHOW GRANTS, an ACCOUNT_USAGE query).

        Locally the statement is recorded and `None` comes back (there is nothing to read); in the
        cloud it runs and its rows come back keyed by upper-case column name.
        """
        if self.is_local:
            self.cloud_only(statement, purpose)
            return None
        rows = self.fetch(statement.to_sql())
        self._record(CloudOnlyRecord(statement.kind, statement.to_sql(), "", purpose, executed=True))
        return rows

    def recommend(self, statement: CloudStatement, purpose: str, why_not_applied: str) -> CloudOnlyRecord:
        """Record an account-level change that is shown but never applied automatically.

        For changes a script must not make on a learner's account by itself (attaching a network
        policy to the account, resuming a scheduled task, failover to another account): locally it
        is recorded like `cloud_only`; in the cloud it is recorded, not executed, with `why_not_applied`.
        """
        if self.is_local:
            return self.cloud_only(statement, purpose)
        sql = statement.to_sql()
        record = CloudOnlyRecord(statement.kind, sql, why_not_applied, purpose, executed=False)
        self._audit(sql, "recommended (not applied)", ok=True, started=time.perf_counter())
        self._record(record)
        return record

    def _record(self, record: CloudOnlyRecord) -> None:
        """Add a cloud-only statement to the ledger and the run's plan, and show it whole."""
        self.ledger.append(record)
        entry = PlanEntry("snowflake", record.kind, record.sql, record.reason, record.purpose, "sql", record.executed)
        if self.plan is not None:
            self.plan.append(entry)
        if self.narrator:
            self.narrator.cloud_step(entry)

    def _audit(
        self, sql: str, category: str, *, ok: bool, started: float, rows: int | None = None, params: Any = None
    ) -> None:
        seconds = time.perf_counter() - started
        self.audit.append(
            AuditEntry(len(self.audit) + 1, sql.strip(), category, ok, seconds, rows, params, self.playing)
        )


def _cloud_kwargs(config: ServiceConfig, database: str | None, schema: str | None) -> dict[str, Any]:
    """The connector's arguments: from `.env`, or a `connections.toml` connection (by name, so the
    connector reads its credentials itself) with this project's timeouts and session settings."""
    login_timeout = config.number("SNOWFLAKE_LOGIN_TIMEOUT", DEFAULT_LOGIN_TIMEOUT_S)
    kwargs: dict[str, Any] = {
        "login_timeout": login_timeout,
        "network_timeout": login_timeout * 3,
        "session_parameters": {"QUERY_TAG": "lakehouse-expert-patterns"},
        "client_session_keep_alive": False,
    }
    kwargs.update({k: v for k, v in (("database", database), ("schema", schema)) if v})
    if config.profile:
        kwargs["connection_name"] = config.profile
        kwargs["connections_file_path"] = Path(config.profile_file)
    for key, arg in (
        ("SNOWFLAKE_ACCOUNT", "account"),
        ("SNOWFLAKE_USER", "user"),
        ("SNOWFLAKE_ROLE", "role"),
        ("SNOWFLAKE_WAREHOUSE", "warehouse"),
        ("SNOWFLAKE_HOST", "host"),
        ("SNOWFLAKE_PROTOCOL", "protocol"),
    ):
        if config.get(key):
            kwargs[arg] = config.get(key)
    if config.get("SNOWFLAKE_PORT"):
        kwargs["port"] = config.number("SNOWFLAKE_PORT", 443)
    key_file = config.get("SNOWFLAKE_PRIVATE_KEY_FILE")
    password = config.secret("SNOWFLAKE_PASSWORD")
    if key_file:
        kwargs["authenticator"] = "SNOWFLAKE_JWT"
        kwargs["private_key_file"] = key_file
        if (pwd := config.secret("SNOWFLAKE_PRIVATE_KEY_FILE_PWD")) is not None:
            kwargs["private_key_file_pwd"] = pwd.get_secret_value()
    elif config.get("SNOWFLAKE_AUTHENTICATOR"):
        kwargs["authenticator"] = config.get("SNOWFLAKE_AUTHENTICATOR")
        if password is not None:
            kwargs["password"] = password.get_secret_value()
    elif password is not None:
        kwargs["password"] = password.get_secret_value()
    return kwargs


def connect_cloud(config: ServiceConfig, database: str | None = None, schema: str | None = None) -> Any:
    """The real connector against an account; a failure becomes one plain message, within seconds.

    The host is probed first (`expert.runtime.endpoints`): the connector waits 60 s for a server
    that accepts the connection and never answers, whatever its login timeout says.
    """
    from expert.runtime.endpoints import probe_snowflake

    probe_snowflake(config)
    kwargs = _cloud_kwargs(config, database, schema)
    try:
        return snowflake.connector.connect(**kwargs)
    except snowflake.connector.errors.Error as exc:
        message = scrub(str(getattr(exc, "msg", "") or exc).splitlines()[0])
        who = config.get("SNOWFLAKE_USER") or "the configured user"
        raise ExpertError(
            f"could not connect to Snowflake at {config.host} as {who} (settings from {config.source}): {message}",
            "check SNOWFLAKE_ACCOUNT / SNOWFLAKE_HOST, the credentials and your network; "
            "or remove the SNOWFLAKE_* keys from .env to use the local engine",
        ) from None


def cloud_names(config: ServiceConfig, database: str, schema: str) -> tuple[str, str]:
    """The database and schema a cloud session uses (`SNOWFLAKE_DATABASE` / `SNOWFLAKE_SCHEMA`, else the
    pattern's), each checked with `snowflake_ddl.identifier` before it is written into CREATE and USE:
    a plain unquoted identifier, never a fragment of SQL."""
    names = []
    for key, default in (("SNOWFLAKE_DATABASE", database), ("SNOWFLAKE_SCHEMA", schema)):
        value = config.get(key) or default
        try:
            if "." in value:
                raise ValueError(value)
            identifier(value)
        except ValueError:
            raise ConfigError(
                f"{key if config.get(key) else 'the pattern'} names {value!r}, which is not a plain Snowflake identifier",
                f"set {key} to letters, digits, _ or $ (starting with a letter or _), with no dots, quotes or spaces",
            ) from None
        names.append(value)
    return names[0], names[1]


@contextlib.contextmanager
def snowflake_session(
    config: ServiceConfig,
    *,
    db_path: Path,
    database: str = "EXPERT",
    schema: str = "PUBLIC",
    narrator: Narrator | None = None,
    owner: str = "",
    reset_existing: bool = False,
    renamable: bool = True,
) -> Iterator[SnowflakeSession]:
    """Open a session in the configured mode, creating `database.schema` if needed.

    Locally, databases are DuckDB files under `db_path`, so a second session on the same path sees
    the first one's tables (as a second connection to an account would). On an account,
    SNOWFLAKE_DATABASE / SNOWFLAKE_SCHEMA rename `database.schema` (unless `renamable` is False,
    for a pattern whose SQL names them), and with `owner` (the pattern's id) the session refuses to
    drop or replace what these patterns did not create, unless `reset_existing`.
    """
    if config.is_cloud:
        if renamable:
            database, schema = cloud_names(config, database, schema)
        elif narrator and (config.get("SNOWFLAKE_DATABASE") or config.get("SNOWFLAKE_SCHEMA")):
            narrator.note(f"SNOWFLAKE_DATABASE / SNOWFLAKE_SCHEMA do not apply here: this pattern's SQL names "
                          f"{database}.{schema}, so it works there.")  # fmt: skip
        connection = connect_cloud(config)  # no database or schema yet: they may not exist
        try:
            session = SnowflakeSession(connection, "cloud", database, schema, narrator)
            if owner:
                from expert.runtime.snowflake_ownership import Ownership

                session.ownership = Ownership(owner, database, reset_existing, narrator)
            try:
                session.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
                session.execute(f"CREATE SCHEMA IF NOT EXISTS {database}.{schema}")
            except snowflake.connector.errors.ProgrammingError as exc:
                raise ExpertError(
                    f"could not create {database}.{schema} on the account: {str(exc.msg or exc).splitlines()[0]}",
                    "grant your role CREATE DATABASE (or CREATE SCHEMA on the database), or set "
                    "SNOWFLAKE_DATABASE / SNOWFLAKE_SCHEMA to ones it may use",
                ) from None
            session.execute(f"USE SCHEMA {database}.{schema}")
            yield session
        finally:
            connection.close()
        return

    import fakesnow

    db_path.mkdir(parents=True, exist_ok=True)
    with fakesnow.patch(db_path=db_path):
        connection = snowflake.connector.connect(database=database, schema=schema)
        try:
            yield SnowflakeSession(connection, "local", database, schema, narrator)
        finally:
            connection.close()


@contextlib.contextmanager
def local_server(db_path: Path | None = None) -> Iterator[dict[str, Any]]:
    """fakesnow's Snowflake server on 127.0.0.1, yielding the connector's keyword arguments for it.

    For code that needs a real connection over the network (schemachange: session id, iterable
    cursors; a Spark Connect server's foreachBatch worker, in another process; the cloud code
    path's tests), which fakesnow's in-process patch does not give; the server speaks the
    Snowflake REST protocol. With `db_path`, every session shares one engine whose databases are
    files there (the layout `snowflake_session` uses), so the data outlives the server; without
    it, one in-memory engine. Not `fakesnow.server()`: that function imports the `fakesnow.server`
    module, which then shadows the function for the rest of the process. The one statement
    schemachange issues that fakesnow lacks, `ALTER SESSION SET QUERY_TAG`, is a no-op.
    """
    import fakesnow.server
    import uvicorn
    from fakesnow.instance import FakeSnow

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            fakesnow.server.app, host="127.0.0.1", port=port, log_level="warning", log_config=None, access_log=False
        )
    )
    # Sessions log in to the module's shared engine. Its per-session FAKESNOW_DB_PATH parameter
    # would open one engine per login instead, and two engines on one database file corrupt it.
    shared = fakesnow.server.shared_fs
    if db_path is not None:
        db_path.mkdir(parents=True, exist_ok=True)
        fakesnow.server.shared_fs = FakeSnow(db_path=db_path)
    thread = threading.Thread(target=server.run, name="fakesnow-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            raise ExpertError("the local Snowflake server (fakesnow) did not start", "rerun; see `expert doctor`")
        yield {
            "account": "fakesnow",
            "user": "fake",
            "password": "snow",
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
            "session_parameters": {
                "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
                "nop_regexes": ["^ALTER SESSION SET QUERY_TAG"],
            },
            "network_timeout": 10,
        }
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if db_path is not None:
            fakesnow.server.shared_fs.duck_conn.close()
            fakesnow.server.shared_fs = shared


@dataclass(frozen=True)
class SnowflakeEndpoint:
    """How to reach one Snowflake schema from any process: a picklable recipe, not a connection.

    A Spark Connect server runs a `foreachBatch` function in its own Python worker, so a sink
    cannot borrow the driver's connection; it carries this and connects where it runs (with the
    credentials inside it: keep the server as trusted as the machine holding `.env`). Locally it
    points at `local_server`, so the driver and every worker see the same tables.
    """

    mode: Mode
    database: str
    schema: str
    connect_args: Mapping[str, Any] = field(repr=False)

    def open(self, narrator: Narrator | None = None) -> SnowflakeSession:
        """A new session; the caller closes its `connection`."""
        try:
            connection = snowflake.connector.connect(
                **{**self.connect_args, "database": self.database, "schema": self.schema}
            )
        except snowflake.connector.errors.Error as exc:
            message = scrub(str(getattr(exc, "msg", "") or exc).splitlines()[0])
            where = "the local Snowflake server" if self.mode == "local" else "Snowflake"
            raise ExpertError(
                f"could not connect to {where}: {message}", "check the SNOWFLAKE_* keys in .env"
            ) from None
        return SnowflakeSession(connection, self.mode, self.database, self.schema, narrator)

    @contextlib.contextmanager
    def session(self, narrator: Narrator | None = None) -> Iterator[SnowflakeSession]:
        session = self.open(narrator)
        try:
            yield session
        finally:
            session.connection.close()


@contextlib.contextmanager
def snowflake_endpoint(
    config: ServiceConfig,
    *,
    db_path: Path,
    database: str = "EXPERT",
    schema: str = "PUBLIC",
    owner: str = "",
    reset_existing: bool = False,
) -> Iterator[SnowflakeEndpoint]:
    """An endpoint in the configured mode, with `database.schema` created: the account from `.env`,
    or `local_server` on loopback with its databases under `db_path`. With `owner` (the pattern's
    id), what the creation made is recorded as the run's (see `snowflake_session`)."""
    if config.is_cloud:
        database, schema = cloud_names(config, database, schema)
        with snowflake_session(
            config, db_path=db_path, database=database, schema=schema, owner=owner, reset_existing=reset_existing
        ):  # creates them
            yield SnowflakeEndpoint("cloud", database, schema, _cloud_kwargs(config, database, schema))
        return
    with local_server(db_path) as kwargs:
        yield SnowflakeEndpoint("local", database, schema, kwargs)
