"""Typed definitions of Snowflake account-level objects, rendered to the exact DDL Snowflake runs.

Why typed: admin DDL (`CREATE WAREHOUSE ... AUTO_SUSPEND = 60`) is free text that sqlglot parses
only as an opaque `Command`, so a typo such as `AUTO_SUSPNED` would pass every local check and
fail only in production. Each object here is a pydantic model with `extra="forbid"`, enums for
closed vocabularies and range checks, so a wrong field or value fails where it is written.
`to_sql()` renders the statement; `local_reason` says why the local engine (fakesnow on DuckDB)
cannot execute it, which is what the cloud-only record shows the learner.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")


def identifier(name: str) -> str:
    """Validate an unquoted (optionally qualified) identifier and return it upper-cased."""
    if not _IDENT.match(name):
        raise ValueError(f"{name!r} is not a valid unquoted Snowflake identifier")
    return name.upper()


Ident = Annotated[str, AfterValidator(identifier)]
"""A validated, upper-cased Snowflake identifier (`DB.SCHEMA.NAME` allowed)."""


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class CloudStatement(BaseModel):
    """A statement that runs only on a real account. Subclasses render `to_sql()`."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)
    kind: ClassVar[str] = "statement"
    local_reason: ClassVar[str] = "the local engine (fakesnow on DuckDB) has no such object"

    def to_sql(self) -> str:
        raise NotImplementedError


class WarehouseSize(StrEnum):
    XSMALL = "XSMALL"
    SMALL = "SMALL"
    MEDIUM = "MEDIUM"
    LARGE = "LARGE"
    XLARGE = "XLARGE"
    XXLARGE = "XXLARGE"
    XXXLARGE = "XXXLARGE"
    X4LARGE = "X4LARGE"
    X5LARGE = "X5LARGE"
    X6LARGE = "X6LARGE"

    @property
    def credits_per_hour(self) -> int:
        """Standard warehouse credits per hour: X-Small is 1, each size up doubles."""
        return 2 ** list(WarehouseSize).index(self)


class ScalingPolicy(StrEnum):
    STANDARD = "STANDARD"
    ECONOMY = "ECONOMY"


class Warehouse(CloudStatement):
    kind: ClassVar[str] = "warehouse"
    local_reason: ClassVar[str] = "warehouses are compute clusters; fakesnow runs every query in-process"

    name: Ident
    size: WarehouseSize = WarehouseSize.XSMALL
    auto_suspend_seconds: int | None = Field(default=60, ge=0)
    auto_resume: bool = True
    initially_suspended: bool = True
    min_cluster_count: int = Field(default=1, ge=1, le=10)
    max_cluster_count: int = Field(default=1, ge=1, le=10)
    scaling_policy: ScalingPolicy = ScalingPolicy.STANDARD
    resource_monitor: Ident | None = None
    comment: str = ""

    def to_sql(self) -> str:
        suspend = "NULL" if self.auto_suspend_seconds is None else str(self.auto_suspend_seconds)
        parts = [
            f"WAREHOUSE_SIZE = '{self.size.value}'",
            f"AUTO_SUSPEND = {suspend}",
            f"AUTO_RESUME = {str(self.auto_resume).upper()}",
            f"INITIALLY_SUSPENDED = {str(self.initially_suspended).upper()}",
        ]
        if self.max_cluster_count > 1:
            parts += [
                f"MIN_CLUSTER_COUNT = {self.min_cluster_count}",
                f"MAX_CLUSTER_COUNT = {self.max_cluster_count}",
                f"SCALING_POLICY = '{self.scaling_policy.value}'",
            ]
        if self.resource_monitor:
            parts.append(f"RESOURCE_MONITOR = {self.resource_monitor}")
        if self.comment:
            parts.append(f"COMMENT = {quote_literal(self.comment)}")
        return f"CREATE WAREHOUSE IF NOT EXISTS {self.name} WITH\n  " + "\n  ".join(parts)


class MonitorFrequency(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    YEARLY = "YEARLY"
    NEVER = "NEVER"


class MonitorAction(StrEnum):
    NOTIFY = "NOTIFY"
    SUSPEND = "SUSPEND"
    SUSPEND_IMMEDIATE = "SUSPEND_IMMEDIATE"


class MonitorTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    percent: int = Field(ge=1, le=1000)
    action: MonitorAction


class ResourceMonitor(CloudStatement):
    kind: ClassVar[str] = "resource monitor"
    local_reason: ClassVar[str] = "resource monitors meter warehouse credits; there is no billing locally"

    name: Ident
    credit_quota: float = Field(gt=0)
    frequency: MonitorFrequency = MonitorFrequency.MONTHLY
    triggers: tuple[MonitorTrigger, ...] = ()

    def to_sql(self) -> str:
        triggers = " ".join(f"ON {t.percent} PERCENT DO {t.action.value}" for t in self.triggers)
        return (
            f"CREATE OR REPLACE RESOURCE MONITOR {self.name} WITH\n"
            f"  CREDIT_QUOTA = {self.credit_quota:g}\n  FREQUENCY = {self.frequency.value}\n"
            "  START_TIMESTAMP = IMMEDIATELY" + (f"\n  TRIGGERS {triggers}" if triggers else "")
        )


class Role(CloudStatement):
    kind: ClassVar[str] = "role"
    local_reason: ClassVar[str] = "the local engine has one implicit role (CURRENT_ROLE() is always 'duckdb')"

    name: Ident
    comment: str = ""

    def to_sql(self) -> str:
        comment = f" COMMENT = {quote_literal(self.comment)}" if self.comment else ""
        return f"CREATE ROLE IF NOT EXISTS {self.name}{comment}"


class RoleGrant(CloudStatement):
    """`GRANT ROLE child TO ROLE parent`: the parent inherits every privilege of the child."""

    kind: ClassVar[str] = "grant"
    local_reason: ClassVar[str] = "grants need roles, which the local engine does not have"

    role: Ident
    to_role: Ident

    def to_sql(self) -> str:
        return f"GRANT ROLE {self.role} TO ROLE {self.to_role}"


class Privilege(StrEnum):
    USAGE = "USAGE"
    SELECT = "SELECT"
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    TRUNCATE = "TRUNCATE"
    OPERATE = "OPERATE"
    MONITOR = "MONITOR"
    MODIFY = "MODIFY"
    OWNERSHIP = "OWNERSHIP"
    CREATE_TABLE = "CREATE TABLE"
    CREATE_VIEW = "CREATE VIEW"
    CREATE_SCHEMA = "CREATE SCHEMA"
    APPLY_MASKING_POLICY = "APPLY MASKING POLICY"


class GrantTarget(StrEnum):
    WAREHOUSE = "WAREHOUSE"
    DATABASE = "DATABASE"
    SCHEMA = "SCHEMA"
    TABLE = "TABLE"
    VIEW = "VIEW"
    ALL_TABLES_IN_SCHEMA = "ALL TABLES IN SCHEMA"
    FUTURE_TABLES_IN_SCHEMA = "FUTURE TABLES IN SCHEMA"
    ACCOUNT = "ACCOUNT"


class PrivilegeGrant(CloudStatement):
    kind: ClassVar[str] = "grant"
    local_reason: ClassVar[str] = "grants need roles, which the local engine does not have"

    privileges: tuple[Privilege, ...] = Field(min_length=1)
    on: GrantTarget
    object_name: Ident | None = None
    to_role: Ident

    @model_validator(mode="after")
    def _object_named(self) -> PrivilegeGrant:
        if (self.on is GrantTarget.ACCOUNT) != (self.object_name is None):
            needs = "no object name" if self.on is GrantTarget.ACCOUNT else "an object name"
            raise ValueError(f"GRANT ... ON {self.on.value} needs {needs}")
        return self

    def to_sql(self) -> str:
        privileges = ", ".join(p.value for p in self.privileges)
        target = self.on.value if self.on is GrantTarget.ACCOUNT else f"{self.on.value} {self.object_name}"
        return f"GRANT {privileges} ON {target} TO ROLE {self.to_role}"


class MaskingPolicy(CloudStatement):
    """A column masking policy; `body` is a real SQL expression over `arg` and CURRENT_ROLE()."""

    kind: ClassVar[str] = "masking policy"
    local_reason: ClassVar[str] = "fakesnow does not enforce masking policies (the body is evaluated locally instead)"

    name: Ident
    arg: Ident = "VAL"
    arg_type: str = "STRING"
    body: str

    def to_sql(self) -> str:
        return (
            f"CREATE OR REPLACE MASKING POLICY {self.name} AS ({self.arg} {self.arg_type}) "
            f"RETURNS {self.arg_type} ->\n  {self.body}"
        )


class SetMaskingPolicy(CloudStatement):
    kind: ClassVar[str] = "masking policy"
    local_reason: ClassVar[str] = MaskingPolicy.local_reason

    table: Ident
    column: Ident
    policy: Ident

    def to_sql(self) -> str:
        return f"ALTER TABLE {self.table} MODIFY COLUMN {self.column} SET MASKING POLICY {self.policy}"


class RowAccessPolicy(CloudStatement):
    kind: ClassVar[str] = "row access policy"
    local_reason: ClassVar[str] = (
        "fakesnow does not enforce row access policies (the body is evaluated locally instead)"
    )

    name: Ident
    args: tuple[tuple[str, str], ...] = Field(min_length=1)
    body: str

    def to_sql(self) -> str:
        signature = ", ".join(f"{identifier(n)} {t}" for n, t in self.args)
        return f"CREATE OR REPLACE ROW ACCESS POLICY {self.name} AS ({signature}) RETURNS BOOLEAN ->\n  {self.body}"


class AddRowAccessPolicy(CloudStatement):
    kind: ClassVar[str] = "row access policy"
    local_reason: ClassVar[str] = RowAccessPolicy.local_reason

    table: Ident
    policy: Ident
    columns: tuple[Ident, ...] = Field(min_length=1)

    def to_sql(self) -> str:
        cols = ", ".join(self.columns)
        return f"ALTER TABLE {self.table} ADD ROW ACCESS POLICY {self.policy} ON ({cols})"


class Stream(CloudStatement):
    kind: ClassVar[str] = "stream"
    local_reason: ClassVar[str] = "fakesnow has no change tracking, so no streams"

    name: Ident
    on_table: Ident
    append_only: bool = False
    show_initial_rows: bool = False

    def to_sql(self) -> str:
        return (
            f"CREATE OR REPLACE STREAM {self.name} ON TABLE {self.on_table}"
            f" APPEND_ONLY = {str(self.append_only).upper()}"
            f" SHOW_INITIAL_ROWS = {str(self.show_initial_rows).upper()}"
        )


_SCHEDULE = re.compile(r"^(\d+ (MINUTE|MINUTES|SECOND|SECONDS|HOUR|HOURS)|USING CRON \S+ \S+ \S+ \S+ \S+ \S+)$")


class Task(CloudStatement):
    kind: ClassVar[str] = "task"
    local_reason: ClassVar[str] = "fakesnow has no scheduler, so no tasks"

    name: Ident
    warehouse: Ident | None = None
    schedule: str | None = None
    after: tuple[Ident, ...] = ()
    when: str | None = None
    body: str

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None and not _SCHEDULE.match(value.upper()):
            raise ValueError(f"schedule {value!r} is not 'N MINUTES' or 'USING CRON <expr> <tz>'")
        return value

    def to_sql(self) -> str:
        lines = [f"CREATE OR REPLACE TASK {self.name}"]
        if self.warehouse:
            lines.append(f"  WAREHOUSE = {self.warehouse}")
        if self.schedule:
            lines.append(f"  SCHEDULE = {quote_literal(self.schedule)}")
        if self.after:
            lines.append("  AFTER " + ", ".join(self.after))
        if self.when:
            lines.append(f"  WHEN {self.when}")
        lines.append(f"AS\n  {self.body}")
        return "\n".join(lines)


class ResumeTask(CloudStatement):
    kind: ClassVar[str] = "task"
    local_reason: ClassVar[str] = Task.local_reason

    name: Ident

    def to_sql(self) -> str:
        return f"ALTER TASK {self.name} RESUME"


class NetworkPolicy(CloudStatement):
    kind: ClassVar[str] = "network policy"
    local_reason: ClassVar[str] = "the local engine accepts no network connections, so there is nothing to restrict"

    name: Ident
    allowed_ip_list: tuple[str, ...] = Field(min_length=1)
    blocked_ip_list: tuple[str, ...] = ()
    comment: str = ""

    @field_validator("allowed_ip_list", "blocked_ip_list")
    @classmethod
    def _cidrs(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            ipaddress.ip_network(value, strict=False)
        return values

    def to_sql(self) -> str:
        allowed = ", ".join(quote_literal(ip) for ip in self.allowed_ip_list)
        sql = f"CREATE OR REPLACE NETWORK POLICY {self.name}\n  ALLOWED_IP_LIST = ({allowed})"
        if self.blocked_ip_list:
            blocked = ", ".join(quote_literal(ip) for ip in self.blocked_ip_list)
            sql += f"\n  BLOCKED_IP_LIST = ({blocked})"
        if self.comment:
            sql += f"\n  COMMENT = {quote_literal(self.comment)}"
        return sql


class Tag(CloudStatement):
    kind: ClassVar[str] = "tag"
    local_reason: ClassVar[str] = "object tagging is a governance feature fakesnow does not implement"

    name: Ident
    allowed_values: tuple[str, ...] = ()

    def to_sql(self) -> str:
        allowed = ""
        if self.allowed_values:
            allowed = " ALLOWED_VALUES " + ", ".join(quote_literal(v) for v in self.allowed_values)
        return f"CREATE TAG IF NOT EXISTS {self.name}{allowed}"


class SetColumnTag(CloudStatement):
    kind: ClassVar[str] = "tag"
    local_reason: ClassVar[str] = Tag.local_reason

    table: Ident
    column: Ident
    tag: Ident
    value: str

    def to_sql(self) -> str:
        return f"ALTER TABLE {self.table} MODIFY COLUMN {self.column} SET TAG {self.tag} = {quote_literal(self.value)}"
