"""Never touch what the run did not create: the ownership guard of a Snowflake session on an account.

Why: a pattern drops and recreates its schemas so that a rerun starts clean. Pointed at a
database someone else uses (SNOWFLAKE_DATABASE), the same `DROP SCHEMA ... CASCADE` would destroy
their tables. So in cloud mode every statement a session issues passes this guard first. A
statement that drops or replaces an object (`DROP`, `CREATE OR REPLACE`, `TRUNCATE`) may run
when the object does not exist, or when these patterns created it: earlier in this run, or in an
earlier run, as recorded in the table LAKEHOUSE_EXPERT_OWNED in the PUBLIC schema of the object's
database (of the session's own database, for account-level objects such as network policies).
Anything else is refused with an `ExpertError` naming the object and the `--reset-existing` flag
that allows it. Every database and schema a run creates, and any other object it creates by
`CREATE OR REPLACE` outside them, is recorded there (everything inside a recorded database or
schema is the run's; databases and schemas also get a COMMENT naming the pattern, for people
browsing the account). Locally none of this applies: the local engine's
databases are files in the run's own workdir.

Measured with fakesnow 0.12.1 (the local server the tests run the cloud path against): it accepts
COMMENT on databases and schemas but does not store it, has SHOW DATABASES / SCHEMAS / TABLES but
not SHOW NETWORK POLICIES, and keeps table rows; hence the registry is a table, not a comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import snowflake.connector.errors

from expert.runtime.cloud_plan import sql_literal
from expert.runtime.errors import ExpertError

if TYPE_CHECKING:
    from expert.runtime.narrate import Narrator
    from expert.runtime.snowflake import SnowflakeSession

REGISTRY = "LAKEHOUSE_EXPERT_OWNED"
"""The table, in a database's PUBLIC schema, that lists what these patterns created there."""

ACCOUNT_KINDS = {
    "DATABASE": "DATABASES", "WAREHOUSE": "WAREHOUSES", "ROLE": "ROLES", "USER": "USERS",
    "NETWORK POLICY": "NETWORK POLICIES", "RESOURCE MONITOR": "RESOURCE MONITORS", "SHARE": "SHARES",
    "FAILOVER GROUP": "FAILOVER GROUPS", "REPLICATION GROUP": "REPLICATION GROUPS",
    "STORAGE INTEGRATION": "INTEGRATIONS", "SECURITY INTEGRATION": "INTEGRATIONS",
    "CATALOG INTEGRATION": "INTEGRATIONS", "NOTIFICATION INTEGRATION": "INTEGRATIONS",
    "API INTEGRATION": "INTEGRATIONS", "EXTERNAL VOLUME": "EXTERNAL VOLUMES",
}  # fmt: skip
"""Objects that live in the account, with the SHOW command that lists them."""
SCHEMA_KINDS = {
    "TABLE": "TABLES", "DYNAMIC TABLE": "DYNAMIC TABLES", "EXTERNAL TABLE": "EXTERNAL TABLES",
    "ICEBERG TABLE": "ICEBERG TABLES", "VIEW": "VIEWS", "MATERIALIZED VIEW": "MATERIALIZED VIEWS",
    "STAGE": "STAGES", "STREAM": "STREAMS", "TASK": "TASKS", "PIPE": "PIPES", "SEQUENCE": "SEQUENCES",
    "FILE FORMAT": "FILE FORMATS", "FUNCTION": "USER FUNCTIONS", "PROCEDURE": "PROCEDURES",
    "MASKING POLICY": "MASKING POLICIES", "ROW ACCESS POLICY": "ROW ACCESS POLICIES", "TAG": "TAGS",
    "NETWORK RULE": "NETWORK RULES", "AUTHENTICATION POLICY": "AUTHENTICATION POLICIES",
    "PASSWORD POLICY": "PASSWORD POLICIES", "SESSION POLICY": "SESSION POLICIES", "SECRET": "SECRETS",
}  # fmt: skip
"""Objects that live in a schema, with the SHOW command that lists them."""

_KIND = "|".join(
    sorted((k.replace(" ", r"\s+") for k in [*ACCOUNT_KINDS, "SCHEMA", *SCHEMA_KINDS]), key=len, reverse=True)
)
_PART = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)'
_NAME = rf"{_PART}(?:\s*\.\s*{_PART}){{0,2}}"
_MODIFIERS = r"(?:(?:SECURE|TRANSIENT|TEMPORARY|TEMP|VOLATILE|LOCAL|GLOBAL|RECURSIVE)\s+)*"
_DROP = re.compile(rf"^\s*DROP\s+(?P<kind>{_KIND})\s+(?:IF\s+EXISTS\s+)?(?P<name>{_NAME})", re.IGNORECASE)
_REPLACE = re.compile(rf"^\s*CREATE\s+OR\s+REPLACE\s+{_MODIFIERS}(?P<kind>{_KIND})\s+(?P<name>{_NAME})", re.IGNORECASE)
_TRUNCATE = re.compile(rf"^\s*TRUNCATE\s+(?:TABLE\s+)?(?:IF\s+EXISTS\s+)?(?P<name>{_NAME})", re.IGNORECASE)
_CREATE = re.compile(
    rf"^\s*CREATE\s+{_MODIFIERS}(?P<kind>DATABASE|SCHEMA)\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ObjectRef:
    """A Snowflake object: its kind and its name, fully qualified for anything inside a database."""

    kind: str
    name: str

    @property
    def parts(self) -> list[str]:
        return self.name.split(".")

    @property
    def database(self) -> str | None:
        """The database the object is in (itself, for a database); None for other account-level objects."""
        if self.kind in ACCOUNT_KINDS and self.kind != "DATABASE":
            return None
        return self.parts[0]

    def containers(self) -> list[ObjectRef]:
        """The object, its schema and its database (whichever apply)."""
        out = [self]
        if self.kind in SCHEMA_KINDS:
            out.append(ObjectRef("SCHEMA", ".".join(self.parts[:2])))
        if self.kind in SCHEMA_KINDS or self.kind == "SCHEMA":
            out.append(ObjectRef("DATABASE", self.parts[0]))
        return out

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Statement:
    """What a statement does to an object: `verb` is drop, replace, truncate or create."""

    verb: str
    kind: str
    name: str


def classify(sql: str) -> Statement | None:
    """The object a statement drops, replaces, truncates or (for databases and schemas) creates; else None."""
    for verb, pattern in (("drop", _DROP), ("replace", _REPLACE), ("create", _CREATE)):
        if match := pattern.match(sql):
            return Statement(verb, re.sub(r"\s+", " ", match["kind"].upper()), match["name"])
    if match := _TRUNCATE.match(sql):
        return Statement("truncate", "TABLE", match["name"])
    return None


def _identifier(part: str) -> str:
    part = part.strip()
    return part[1:-1] if part.startswith('"') else part.upper()


class ExistenceUnknownError(Exception):
    """The account would not say whether an object exists (a SHOW command failed)."""


@dataclass
class Ownership:
    """The guard for one run's Snowflake sessions: what the run may drop or replace, and the record of what it made."""

    pattern: str
    """The pattern the run belongs to (named in messages and in the registry)."""
    home: str
    """The session's database: its registry also lists the account-level objects the run created."""
    reset_existing: bool = False
    """Set by `--reset-existing`: drop and replace existing objects even when these patterns did not create them."""
    narrator: Narrator | None = None
    created: set[ObjectRef] = field(default_factory=set, init=False)
    """What this run created (also recorded in the registries)."""
    _registries: dict[str, set[tuple[str, str]]] = field(default_factory=dict, init=False, repr=False)

    def before(self, session: SnowflakeSession, sql: str) -> ObjectRef | None:
        """Check a statement before it runs: raise `ExpertError` to refuse it; return the object to
        record once it has run (None: nothing to record)."""
        statement = classify(sql)
        if statement is None:
            return None
        ref = self._resolve(session, statement)
        if statement.verb == "create":
            return None if self._exists(session, ref, default=True) else ref
        if self._owned(session, ref):
            return None
        try:
            exists = self._exists(session, ref)
        except ExistenceUnknownError as unknown:
            exists, why = True, f"the account would not say whether it exists: {unknown}"
        else:
            why = "which exists and was not created by these patterns"
        if exists and not self.reset_existing:
            raise ExpertError(
                f"{self.pattern} would {statement.verb} {ref}, {why} (--reset-existing allows it)",
                f"drop or rename {ref.name} yourself, point SNOWFLAKE_DATABASE at a database these patterns may "
                f"create (or unset it), or rerun with --reset-existing to let the run {statement.verb} it "
                "(what it holds is lost)",
            )
        if exists and self.narrator:
            self.narrator.warn(f"--reset-existing: {statement.verb} {ref}, which these patterns did not create")
        return ref if statement.verb == "replace" else None

    def after(self, session: SnowflakeSession, ref: ObjectRef) -> None:
        """Record an object the run has just created, in this run and in the registry."""
        self.created.add(ref)
        database = ref.database or self.home
        rows = self._registry(session, database)
        if (ref.kind, ref.name) in rows:
            return
        table = f"{database}.PUBLIC.{REGISTRY}"
        try:
            if ref.kind == "DATABASE":
                self._run(session, f"CREATE SCHEMA IF NOT EXISTS {database}.PUBLIC")
            self._run(
                session,
                f"CREATE TABLE IF NOT EXISTS {table} (OBJECT_KIND VARCHAR, OBJECT_NAME VARCHAR, PATTERN VARCHAR, "
                f"CREATED_AT TIMESTAMP_NTZ) COMMENT = {sql_literal('what lakehouse-expert-patterns created here')}",
            )
            self._run(
                session,
                f"INSERT INTO {table} (OBJECT_KIND, OBJECT_NAME, PATTERN, CREATED_AT) "
                "SELECT %s, %s, %s, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ",
                (ref.kind, ref.name, self.pattern),
            )
            if ref.kind in ("DATABASE", "SCHEMA"):
                comment = f"created by lakehouse-expert-patterns {self.pattern}: a rerun may drop and recreate it"
                self._run(session, f"COMMENT ON {ref.kind} {ref.name} IS {sql_literal(comment)}")
        except snowflake.connector.errors.ProgrammingError as exc:
            raise ExpertError(
                f"{self.pattern} created {ref} but could not record it in {table}: {_first_line(exc)}",
                f"let the role create tables in {database}.PUBLIC, or point SNOWFLAKE_DATABASE at a database "
                "these patterns may create (or unset it)",
            ) from None
        if not rows and self.narrator:
            self.narrator.note(f"What this run creates is recorded in {table}: a rerun replaces only what it lists.")
        rows.add((ref.kind, ref.name))

    def _resolve(self, session: SnowflakeSession, statement: Statement) -> ObjectRef:
        parts = [_identifier(p) for p in re.split(r"\s*\.\s*", statement.name)]
        kind = statement.kind
        wanted = 1 if kind in ACCOUNT_KINDS else 2 if kind == "SCHEMA" else 3
        if len(parts) < wanted:
            database, schema = self._current(session)
            parts = [database, schema][: wanted - len(parts)] + parts
        return ObjectRef(kind, ".".join(parts))

    def _owned(self, session: SnowflakeSession, ref: ObjectRef) -> bool:
        chain = ref.containers()
        if any(c in self.created for c in chain):
            return True
        rows = self._registry(session, ref.database or self.home)
        return any((c.kind, c.name) in rows for c in chain)

    def _exists(self, session: SnowflakeSession, ref: ObjectRef, *, default: bool = False) -> bool:
        """Whether the object exists; `ExistenceUnknownError` when a SHOW fails (or `default`, when given)."""
        try:
            return self._listed(session, ref)
        except ExistenceUnknownError:
            if default:
                return True
            raise

    def _listed(self, session: SnowflakeSession, ref: ObjectRef) -> bool:
        """SHOW the object's kind where it lives and look for its exact name (its container first)."""
        name = ref.parts[-1]
        if ref.kind in SCHEMA_KINDS:
            parent: ObjectRef | None = ObjectRef("SCHEMA", ".".join(ref.parts[:2]))
            show = f"SHOW {SCHEMA_KINDS[ref.kind]} LIKE {sql_literal(name)} IN SCHEMA {parent.name}"
        elif ref.kind == "SCHEMA":
            parent = ObjectRef("DATABASE", ref.parts[0])
            show = f"SHOW SCHEMAS LIKE {sql_literal(name)} IN DATABASE {parent.name}"
        else:
            parent, show = None, f"SHOW {ACCOUNT_KINDS[ref.kind]} LIKE {sql_literal(name)}"
        if parent is not None and not self._listed(session, parent):
            return False
        return _listed(self._show(session, show), name)

    def _registry(self, session: SnowflakeSession, database: str) -> set[tuple[str, str]]:
        if database not in self._registries:
            try:
                rows = self._run(session, f"SELECT OBJECT_KIND, OBJECT_NAME FROM {database}.PUBLIC.{REGISTRY}")
            except snowflake.connector.errors.ProgrammingError:
                rows = []
            self._registries[database] = {(str(kind), str(name)) for kind, name in rows}
        return self._registries[database]

    def _current(self, session: SnowflakeSession) -> tuple[str, str]:
        database, schema = self._run(session, "SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()")[0]
        return str(database or self.home), str(schema or "PUBLIC")

    def _show(self, session: SnowflakeSession, sql: str) -> list[dict[str, Any]]:
        try:
            cursor = session.connection.cursor()
            cursor.execute(sql)
            names = [d[0].lower() for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except snowflake.connector.errors.ProgrammingError as exc:
            raise ExistenceUnknownError(f"{sql.split(' LIKE ', maxsplit=1)[0]} failed: {_first_line(exc)}") from None

    @staticmethod
    def _run(session: SnowflakeSession, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        """The guard's own bookkeeping statements: run on the session's connection, outside its audit trail."""
        cursor = session.connection.cursor()
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


def _listed(rows: list[dict[str, Any]], name: str) -> bool:
    """Whether SHOW ... LIKE listed exactly `name` (LIKE also matches `_` and `%` as wildcards)."""
    return any(str(row.get("name", "")).upper() == name.upper() for row in rows)


def _first_line(exc: snowflake.connector.errors.Error) -> str:
    return str(getattr(exc, "msg", "") or exc).splitlines()[0]
