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
    APPLY_ROW_ACCESS_POLICY = "APPLY ROW ACCESS POLICY"
    APPLY_TAG = "APPLY TAG"
    CREATE_STAGE = "CREATE STAGE"
    READ = "READ"
    WRITE = "WRITE"


class GrantTarget(StrEnum):
    WAREHOUSE = "WAREHOUSE"
    DATABASE = "DATABASE"
    SCHEMA = "SCHEMA"
    TABLE = "TABLE"
    VIEW = "VIEW"
    ALL_TABLES_IN_SCHEMA = "ALL TABLES IN SCHEMA"
    FUTURE_TABLES_IN_SCHEMA = "FUTURE TABLES IN SCHEMA"
    ACCOUNT = "ACCOUNT"
    STAGE = "STAGE"
    ALL_VIEWS_IN_SCHEMA = "ALL VIEWS IN SCHEMA"
    FUTURE_VIEWS_IN_SCHEMA = "FUTURE VIEWS IN SCHEMA"


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


# --- Loading: COPY options, external stages, Snowpipe ------------------------------------------

_STAGE_REF = re.compile(r"^@[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}(/[A-Za-z0-9_.=\-/]*)?$")
_CLOUD_URL = re.compile(r"^(s3|s3gov|gcs|azure)://[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.=\-/]*)?$")
_ACCOUNT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


def stage_reference(value: str) -> str:
    """Validate `@[DB.SCHEMA.]STAGE[/path]`, upper-casing the stage name and keeping the path."""
    if not _STAGE_REF.match(value):
        raise ValueError(f"{value!r} is not a stage reference like @DB.SCHEMA.STAGE/path/")
    name, slash, path = value[1:].partition("/")
    return "@" + name.upper() + slash + path


def cloud_url(value: str) -> str:
    if not _CLOUD_URL.match(value):
        raise ValueError(f"{value!r} is not an s3://, gcs:// or azure:// location")
    return value


def account_name(value: str) -> str:
    """`ORGNAME.ACCOUNT_NAME`, the form replication and sharing use."""
    if not _ACCOUNT.match(value):
        raise ValueError(f"{value!r} is not an <org_name>.<account_name> identifier")
    return value.upper()


StageRef = Annotated[str, AfterValidator(stage_reference)]
CloudUrl = Annotated[str, AfterValidator(cloud_url)]
AccountName = Annotated[str, AfterValidator(account_name)]


class FileFormatType(StrEnum):
    CSV = "CSV"
    JSON = "JSON"
    PARQUET = "PARQUET"


class FileFormat(BaseModel):
    """An inline `FILE_FORMAT = (...)`. `field_delimiter="NONE"` loads each line as one column."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: FileFormatType = FileFormatType.CSV
    skip_header: int = Field(default=0, ge=0)
    field_delimiter: str | None = None
    escape_unenclosed_field: str | None = None
    strip_outer_array: bool = False

    @model_validator(mode="after")
    def _options_fit_type(self) -> FileFormat:
        csv_only = self.skip_header or self.field_delimiter is not None or self.escape_unenclosed_field is not None
        if self.type is not FileFormatType.CSV and csv_only:
            raise ValueError("SKIP_HEADER and FIELD_DELIMITER apply to CSV only")
        if self.strip_outer_array and self.type is not FileFormatType.JSON:
            raise ValueError("STRIP_OUTER_ARRAY applies to JSON only")
        for option in (self.field_delimiter, self.escape_unenclosed_field):
            if option not in (None, "NONE") and len(option) != 1:
                raise ValueError("FIELD_DELIMITER and ESCAPE_UNENCLOSED_FIELD are one character or NONE")
        return self

    def to_sql(self) -> str:
        parts = [f"TYPE = {self.type.value}"]
        if self.skip_header:
            parts.append(f"SKIP_HEADER = {self.skip_header}")
        if self.field_delimiter == "NONE":
            parts.append("FIELD_DELIMITER = NONE")
        elif self.field_delimiter is not None:
            parts.append(f"FIELD_DELIMITER = {quote_literal(self.field_delimiter)}")
        if self.escape_unenclosed_field == "NONE":
            parts.append("ESCAPE_UNENCLOSED_FIELD = NONE")
        elif self.escape_unenclosed_field is not None:
            parts.append(f"ESCAPE_UNENCLOSED_FIELD = {quote_literal(self.escape_unenclosed_field)}")
        if self.strip_outer_array:
            parts.append("STRIP_OUTER_ARRAY = TRUE")
        return "(" + " ".join(parts) + ")"


class OnError(StrEnum):
    """What COPY does with a bad row: keep the good rows, skip the file, or fail the whole load."""

    CONTINUE = "CONTINUE"
    SKIP_FILE = "SKIP_FILE"
    ABORT_STATEMENT = "ABORT_STATEMENT"


class CopyInto(CloudStatement):
    """`COPY INTO <table> FROM @stage`: bulk load with load metadata (a file loads once unless FORCE).

    The same builder renders the statements the local engine runs (ON_ERROR = ABORT_STATEMENT);
    the other error modes are cloud-only.
    """

    kind: ClassVar[str] = "copy"
    local_reason: ClassVar[str] = (
        "fakesnow 0.12.1 runs COPY INTO only with ON_ERROR = ABORT_STATEMENT and no PATTERN "
        "(measured: CONTINUE and SKIP_FILE raise NotImplementedError)"
    )

    table: Ident
    columns: tuple[Ident, ...] = ()
    source: StageRef
    transform: tuple[str, ...] = ()
    file_format: FileFormat = FileFormat()
    pattern: str | None = None
    on_error: OnError = OnError.ABORT_STATEMENT
    force: bool = False
    purge: bool = False

    @model_validator(mode="after")
    def _transform_matches_columns(self) -> CopyInto:
        if self.transform and len(self.transform) != len(self.columns):
            raise ValueError("a COPY transformation needs one target column per selected expression")
        return self

    def to_sql(self) -> str:
        target = f"{self.table} ({', '.join(self.columns)})" if self.columns else self.table
        source = f"(SELECT {', '.join(self.transform)} FROM {self.source})" if self.transform else self.source
        lines = [f"COPY INTO {target}", f"  FROM {source}", f"  FILE_FORMAT = {self.file_format.to_sql()}"]
        if self.pattern:
            lines.append(f"  PATTERN = {quote_literal(self.pattern)}")
        lines.append(f"  ON_ERROR = {self.on_error.value}")
        if self.force:
            lines.append("  FORCE = TRUE")
        if self.purge:
            lines.append("  PURGE = TRUE")
        return "\n".join(lines)


class StorageProvider(StrEnum):
    S3 = "S3"
    GCS = "GCS"
    AZURE = "AZURE"


class StorageIntegration(CloudStatement):
    """Delegated, keyless access to a bucket: Snowflake assumes a cloud IAM role, no secrets in SQL."""

    kind: ClassVar[str] = "storage integration"
    local_reason: ClassVar[str] = "the local engine reads local files; there is no cloud IAM to delegate to"

    name: Ident
    provider: StorageProvider
    allowed_locations: tuple[CloudUrl, ...] = Field(min_length=1)
    aws_role_arn: str | None = None
    azure_tenant_id: str | None = None

    @model_validator(mode="after")
    def _provider_identity(self) -> StorageIntegration:
        if self.provider is StorageProvider.S3 and not (self.aws_role_arn or "").startswith("arn:aws:iam::"):
            raise ValueError("an S3 storage integration needs aws_role_arn (arn:aws:iam::<account>:role/<name>)")
        if self.provider is StorageProvider.AZURE and not self.azure_tenant_id:
            raise ValueError("an Azure storage integration needs azure_tenant_id")
        return self

    def to_sql(self) -> str:
        lines = [
            f"CREATE STORAGE INTEGRATION IF NOT EXISTS {self.name}",
            "  TYPE = EXTERNAL_STAGE",
            f"  STORAGE_PROVIDER = '{self.provider.value}'",
            "  ENABLED = TRUE",
        ]
        if self.aws_role_arn:
            lines.append(f"  STORAGE_AWS_ROLE_ARN = {quote_literal(self.aws_role_arn)}")
        if self.azure_tenant_id:
            lines.append(f"  AZURE_TENANT_ID = {quote_literal(self.azure_tenant_id)}")
        locations = ", ".join(quote_literal(url) for url in self.allowed_locations)
        lines.append(f"  STORAGE_ALLOWED_LOCATIONS = ({locations})")
        return "\n".join(lines)


class ExternalStage(CloudStatement):
    kind: ClassVar[str] = "stage"
    local_reason: ClassVar[str] = (
        "an external stage points at cloud object storage, which the local engine cannot reach"
    )

    name: Ident
    url: CloudUrl
    storage_integration: Ident
    file_format: FileFormat | None = None

    def to_sql(self) -> str:
        sql = (
            f"CREATE STAGE IF NOT EXISTS {self.name}\n  URL = {quote_literal(self.url)}\n"
            f"  STORAGE_INTEGRATION = {self.storage_integration}"
        )
        if self.file_format:
            sql += f"\n  FILE_FORMAT = {self.file_format.to_sql()}"
        return sql


class Pipe(CloudStatement):
    """Snowpipe: the COPY runs serverlessly whenever the bucket announces a new file (AUTO_INGEST).

    Snowpipe rejects some COPY options (FORCE, PURGE, ON_ERROR = ABORT_STATEMENT); they fail here.
    """

    kind: ClassVar[str] = "pipe"
    local_reason: ClassVar[str] = "fakesnow has no pipes and there are no bucket event notifications locally"

    name: Ident
    copy_statement: CopyInto
    auto_ingest: bool = True
    aws_sns_topic: str | None = None
    integration: Ident | None = None
    error_integration: Ident | None = None
    comment: str = ""

    @model_validator(mode="after")
    def _snowpipe_copy_options(self) -> Pipe:
        copy = self.copy_statement
        if copy.force or copy.purge:
            raise ValueError("Snowpipe does not support FORCE or PURGE in its COPY statement")
        if copy.on_error is OnError.ABORT_STATEMENT:
            raise ValueError("Snowpipe does not support ON_ERROR = ABORT_STATEMENT (its default is SKIP_FILE)")
        return self

    def to_sql(self) -> str:
        lines = [f"CREATE PIPE IF NOT EXISTS {self.name}", f"  AUTO_INGEST = {str(self.auto_ingest).upper()}"]
        if self.aws_sns_topic:
            lines.append(f"  AWS_SNS_TOPIC = {quote_literal(self.aws_sns_topic)}")
        if self.integration:
            lines.append(f"  INTEGRATION = {quote_literal(self.integration)}")
        if self.error_integration:
            lines.append(f"  ERROR_INTEGRATION = {self.error_integration}")
        if self.comment:
            lines.append(f"  COMMENT = {quote_literal(self.comment)}")
        return "\n".join(lines) + "\nAS\n" + self.copy_statement.to_sql()


class PipeStatus(CloudStatement):
    kind: ClassVar[str] = "pipe"
    local_reason: ClassVar[str] = Pipe.local_reason

    name: Ident

    def to_sql(self) -> str:
        return f"SELECT SYSTEM$PIPE_STATUS({quote_literal(self.name)}) AS PIPE_STATUS"


class ExecuteTask(CloudStatement):
    """Run a task once now, outside its schedule (what an operator does after a fix)."""

    kind: ClassVar[str] = "task"
    local_reason: ClassVar[str] = Task.local_reason

    name: Ident

    def to_sql(self) -> str:
        return f"EXECUTE TASK {self.name}"


# --- Time travel, cloning, recovery -----------------------------------------------------------


class ObjectType(StrEnum):
    TABLE = "TABLE"
    SCHEMA = "SCHEMA"
    DATABASE = "DATABASE"


class TimeTravel(BaseModel):
    """`AT(OFFSET => -n)`, `AT(TIMESTAMP => ...)` or `BEFORE(STATEMENT => '<query id>')`: exactly one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seconds_ago: int | None = Field(default=None, gt=0)
    timestamp: str | None = None
    before_statement: str | None = Field(default=None, pattern=r"^[0-9a-fA-F-]{8,64}$")

    @model_validator(mode="after")
    def _exactly_one(self) -> TimeTravel:
        chosen = [v for v in (self.seconds_ago, self.timestamp, self.before_statement) if v is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of seconds_ago, timestamp, before_statement")
        return self

    def to_sql(self) -> str:
        if self.seconds_ago is not None:
            return f"AT(OFFSET => -{self.seconds_ago})"
        if self.timestamp is not None:
            return f"AT(TIMESTAMP => {quote_literal(self.timestamp)}::TIMESTAMP_LTZ)"
        return f"BEFORE(STATEMENT => {quote_literal(self.before_statement or '')})"


_TIME_TRAVEL_REASON = (
    "fakesnow keeps no table versions, so AT/BEFORE have nothing to read "
    "(the local twin is Delta Lake time travel in databricks/01)"
)


class TimeTravelQuery(CloudStatement):
    kind: ClassVar[str] = "time travel"
    local_reason: ClassVar[str] = _TIME_TRAVEL_REASON

    table: Ident
    at: TimeTravel
    columns: tuple[str, ...] = ("COUNT(*) AS ROW_COUNT",)
    where: str | None = None

    def to_sql(self) -> str:
        where = f" WHERE {self.where}" if self.where else ""
        return f"SELECT {', '.join(self.columns)} FROM {self.table} {self.at.to_sql()}{where}"


class Clone(CloudStatement):
    """Zero-copy clone: new metadata over the same micro-partitions, optionally as of the past."""

    kind: ClassVar[str] = "clone"
    local_reason: ClassVar[str] = (
        "fakesnow 0.12.1 creates a cloned DATABASE empty and SCHEMA clones fail (measured), clones "
        "tables by copying them, and keeps no history for AT/BEFORE"
    )

    object_type: ObjectType = ObjectType.TABLE
    name: Ident
    source: Ident
    at: TimeTravel | None = None
    replace: bool = True

    def to_sql(self) -> str:
        create = "CREATE OR REPLACE" if self.replace else "CREATE"
        when = f" {self.at.to_sql()}" if self.at else ""
        return f"{create} {self.object_type.value} {self.name} CLONE {self.source}{when}"


class Undrop(CloudStatement):
    kind: ClassVar[str] = "undrop"
    local_reason: ClassVar[str] = (
        "fakesnow has no UNDROP: a dropped table is gone (Snowflake keeps it for the retention period)"
    )

    object_type: ObjectType = ObjectType.TABLE
    name: Ident

    def to_sql(self) -> str:
        return f"UNDROP {self.object_type.value} {self.name}"


class SetDataRetention(CloudStatement):
    """How long Time Travel keeps history (0-1 day on Standard edition, up to 90 on Enterprise)."""

    kind: ClassVar[str] = "time travel"
    local_reason: ClassVar[str] = _TIME_TRAVEL_REASON

    object_type: ObjectType = ObjectType.TABLE
    name: Ident
    days: int = Field(ge=0, le=90)

    def to_sql(self) -> str:
        return f"ALTER {self.object_type.value} {self.name} SET DATA_RETENTION_TIME_IN_DAYS = {self.days}"


# --- Replication, failover and sharing across accounts -----------------------------------------


class ReplicatedObject(StrEnum):
    DATABASES = "DATABASES"
    SHARES = "SHARES"
    ROLES = "ROLES"
    USERS = "USERS"
    WAREHOUSES = "WAREHOUSES"
    INTEGRATIONS = "INTEGRATIONS"
    NETWORK_POLICIES = "NETWORK POLICIES"
    RESOURCE_MONITORS = "RESOURCE MONITORS"
    ACCOUNT_PARAMETERS = "ACCOUNT PARAMETERS"


_REPLICATION_SCHEDULE = re.compile(r"^(\d+ MINUTE|USING CRON \S+ \S+ \S+ \S+ \S+ \S+)$")


class FailoverGroup(CloudStatement):
    """Replicate a set of objects to other accounts on a schedule; promote a secondary on disaster."""

    kind: ClassVar[str] = "failover group"
    local_reason: ClassVar[str] = "replication needs a second Snowflake account; the local engine is one process"

    name: Ident
    object_types: tuple[ReplicatedObject, ...] = Field(min_length=1)
    allowed_databases: tuple[Ident, ...] = ()
    allowed_shares: tuple[Ident, ...] = ()
    allowed_accounts: tuple[AccountName, ...] = Field(min_length=1)
    replication_schedule: str | None = None

    @field_validator("replication_schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None and not _REPLICATION_SCHEDULE.match(value.upper()):
            raise ValueError(f"replication schedule {value!r} is not 'N MINUTE' or 'USING CRON <expr> <tz>'")
        return value

    @model_validator(mode="after")
    def _databases_listed(self) -> FailoverGroup:
        if ReplicatedObject.DATABASES in self.object_types and not self.allowed_databases:
            raise ValueError("OBJECT_TYPES = DATABASES needs allowed_databases")
        return self

    def to_sql(self) -> str:
        lines = [
            f"CREATE FAILOVER GROUP IF NOT EXISTS {self.name}",
            "  OBJECT_TYPES = " + ", ".join(o.value for o in self.object_types),
        ]
        if self.allowed_databases:
            lines.append("  ALLOWED_DATABASES = " + ", ".join(self.allowed_databases))
        if self.allowed_shares:
            lines.append("  ALLOWED_SHARES = " + ", ".join(self.allowed_shares))
        lines.append("  ALLOWED_ACCOUNTS = " + ", ".join(self.allowed_accounts))
        if self.replication_schedule:
            lines.append(f"  REPLICATION_SCHEDULE = {quote_literal(self.replication_schedule)}")
        return "\n".join(lines)


class FailoverGroupReplica(CloudStatement):
    """Run in the target account: the secondary copy of a primary failover group."""

    kind: ClassVar[str] = "failover group"
    local_reason: ClassVar[str] = FailoverGroup.local_reason

    name: Ident
    primary: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")

    def to_sql(self) -> str:
        return f"CREATE FAILOVER GROUP IF NOT EXISTS {self.name}\n  AS REPLICA OF {self.primary.upper()}"


class FailoverGroupAction(StrEnum):
    REFRESH = "REFRESH"
    PRIMARY = "PRIMARY"
    SUSPEND = "SUSPEND"
    RESUME = "RESUME"


class AlterFailoverGroup(CloudStatement):
    """`REFRESH` pulls the latest snapshot into a secondary; `PRIMARY` promotes it (the failover)."""

    kind: ClassVar[str] = "failover group"
    local_reason: ClassVar[str] = FailoverGroup.local_reason

    name: Ident
    action: FailoverGroupAction

    def to_sql(self) -> str:
        return f"ALTER FAILOVER GROUP {self.name} {self.action.value}"


class Share(CloudStatement):
    kind: ClassVar[str] = "share"
    local_reason: ClassVar[str] = "secure data sharing happens between Snowflake accounts; there is one local engine"

    name: Ident
    comment: str = ""

    def to_sql(self) -> str:
        comment = f" COMMENT = {quote_literal(self.comment)}" if self.comment else ""
        return f"CREATE SHARE IF NOT EXISTS {self.name}{comment}"


class SharePrivilege(StrEnum):
    USAGE = "USAGE"
    SELECT = "SELECT"
    REFERENCE_USAGE = "REFERENCE_USAGE"


class GrantToShare(CloudStatement):
    """What a share exposes: USAGE on the database and schema, SELECT on secure views or tables."""

    kind: ClassVar[str] = "share"
    local_reason: ClassVar[str] = Share.local_reason

    privilege: SharePrivilege
    on: GrantTarget
    object_name: Ident
    share: Ident

    @model_validator(mode="after")
    def _shareable(self) -> GrantToShare:
        allowed = {GrantTarget.DATABASE, GrantTarget.SCHEMA, GrantTarget.TABLE, GrantTarget.VIEW}
        if self.on not in allowed:
            raise ValueError(f"a share can be granted privileges on {sorted(a.value for a in allowed)}")
        return self

    def to_sql(self) -> str:
        return f"GRANT {self.privilege.value} ON {self.on.value} {self.object_name} TO SHARE {self.share}"


class AddShareAccounts(CloudStatement):
    kind: ClassVar[str] = "share"
    local_reason: ClassVar[str] = Share.local_reason

    share: Ident
    accounts: tuple[AccountName, ...] = Field(min_length=1)

    def to_sql(self) -> str:
        return f"ALTER SHARE {self.share} ADD ACCOUNTS = {', '.join(self.accounts)}"


# --- Tables over the lake: external volumes, catalog integrations, Iceberg tables --------------


class ExternalVolume(CloudStatement):
    kind: ClassVar[str] = "external volume"
    local_reason: ClassVar[str] = (
        "an external volume is cloud object storage plus an IAM role; nothing to attach locally"
    )

    name: Ident
    location_name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    provider: StorageProvider
    base_url: CloudUrl
    aws_role_arn: str | None = None
    azure_tenant_id: str | None = None

    def to_sql(self) -> str:
        parts = [
            f"NAME = {quote_literal(self.location_name)}",
            f"STORAGE_PROVIDER = '{self.provider.value}'",
            f"STORAGE_BASE_URL = {quote_literal(self.base_url)}",
        ]
        if self.aws_role_arn:
            parts.append(f"STORAGE_AWS_ROLE_ARN = {quote_literal(self.aws_role_arn)}")
        if self.azure_tenant_id:
            parts.append(f"AZURE_TENANT_ID = {quote_literal(self.azure_tenant_id)}")
        return f"CREATE EXTERNAL VOLUME IF NOT EXISTS {self.name}\n  STORAGE_LOCATIONS = (({' '.join(parts)}))"


class LakeTableFormat(StrEnum):
    DELTA = "DELTA"
    ICEBERG = "ICEBERG"


class CatalogIntegration(CloudStatement):
    """`CATALOG_SOURCE = OBJECT_STORE`: Snowflake reads table metadata straight from the files."""

    kind: ClassVar[str] = "catalog integration"
    local_reason: ClassVar[str] = "catalog integrations are account objects over cloud storage; fakesnow has none"

    name: Ident
    table_format: LakeTableFormat

    def to_sql(self) -> str:
        return (
            f"CREATE CATALOG INTEGRATION IF NOT EXISTS {self.name}\n  CATALOG_SOURCE = OBJECT_STORE\n"
            f"  TABLE_FORMAT = {self.table_format.value}\n  ENABLED = TRUE"
        )


class IcebergTable(CloudStatement):
    """A read-only Snowflake table over Delta (or Iceberg) files written by Spark/Databricks."""

    kind: ClassVar[str] = "iceberg table"
    local_reason: ClassVar[str] = "fakesnow cannot read a lake table's metadata from object storage"

    name: Ident
    external_volume: Ident
    catalog: Ident
    base_location: str = Field(pattern=r"^[A-Za-z0-9_.=\-/]+$")
    auto_refresh: bool = True

    def to_sql(self) -> str:
        return (
            f"CREATE ICEBERG TABLE IF NOT EXISTS {self.name}\n  EXTERNAL_VOLUME = {quote_literal(self.external_volume)}\n"
            f"  CATALOG = {quote_literal(self.catalog)}\n  BASE_LOCATION = {quote_literal(self.base_location)}\n"
            f"  AUTO_REFRESH = {str(self.auto_refresh).upper()}"
        )


# --- Cost controls ------------------------------------------------------------------------------


class AlterWarehouse(CloudStatement):
    """Change a running warehouse's settings (only the fields given are set)."""

    kind: ClassVar[str] = "warehouse"
    local_reason: ClassVar[str] = Warehouse.local_reason

    name: Ident
    size: WarehouseSize | None = None
    auto_suspend_seconds: int | None = Field(default=None, ge=0)
    min_cluster_count: int | None = Field(default=None, ge=1, le=10)
    max_cluster_count: int | None = Field(default=None, ge=1, le=10)
    scaling_policy: ScalingPolicy | None = None
    resource_monitor: Ident | None = None
    statement_timeout_seconds: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _something_to_set(self) -> AlterWarehouse:
        if not self.settings():
            raise ValueError("ALTER WAREHOUSE ... SET needs at least one setting")
        return self

    def settings(self) -> list[str]:
        out: list[str] = []
        if self.size is not None:
            out.append(f"WAREHOUSE_SIZE = '{self.size.value}'")
        if self.auto_suspend_seconds is not None:
            out.append(f"AUTO_SUSPEND = {self.auto_suspend_seconds}")
        if self.min_cluster_count is not None:
            out.append(f"MIN_CLUSTER_COUNT = {self.min_cluster_count}")
        if self.max_cluster_count is not None:
            out.append(f"MAX_CLUSTER_COUNT = {self.max_cluster_count}")
        if self.scaling_policy is not None:
            out.append(f"SCALING_POLICY = '{self.scaling_policy.value}'")
        if self.resource_monitor is not None:
            out.append(f"RESOURCE_MONITOR = {self.resource_monitor}")
        if self.statement_timeout_seconds is not None:
            out.append(f"STATEMENT_TIMEOUT_IN_SECONDS = {self.statement_timeout_seconds}")
        return out

    def to_sql(self) -> str:
        return f"ALTER WAREHOUSE {self.name} SET\n  " + "\n  ".join(self.settings())


_CLUSTER_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*\([A-Za-z_][A-Za-z0-9_]*\))$")


class ClusterBy(CloudStatement):
    """A clustering key: Automatic Clustering then keeps micro-partitions sorted by it (for credits)."""

    kind: ClassVar[str] = "clustering"
    local_reason: ClassVar[str] = (
        "DuckDB has no micro-partitions to recluster, so clustering cannot be measured locally"
    )

    table: Ident
    keys: tuple[str, ...] = Field(min_length=1, max_length=4)

    @field_validator("keys")
    @classmethod
    def _keys(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not _CLUSTER_KEY.match(value):
                raise ValueError(f"clustering key {value!r} is not a column or FUNCTION(column)")
        return tuple(v.upper() for v in values)

    def to_sql(self) -> str:
        return f"ALTER TABLE {self.table} CLUSTER BY ({', '.join(self.keys)})"


class ShowWarehouses(CloudStatement):
    kind: ClassVar[str] = "warehouse"
    local_reason: ClassVar[str] = Warehouse.local_reason

    def to_sql(self) -> str:
        return "SHOW WAREHOUSES"


class AccountUsageView(StrEnum):
    QUERY_HISTORY = "QUERY_HISTORY"
    WAREHOUSE_METERING_HISTORY = "WAREHOUSE_METERING_HISTORY"
    TABLES = "TABLES"
    ACCESS_HISTORY = "ACCESS_HISTORY"
    LOGIN_HISTORY = "LOGIN_HISTORY"
    GRANTS_TO_ROLES = "GRANTS_TO_ROLES"


class AccountUsageQuery(CloudStatement):
    """A read-only query over `SNOWFLAKE.ACCOUNT_USAGE` (refused unless it parses as one SELECT)."""

    kind: ClassVar[str] = "account usage"
    local_reason: ClassVar[str] = (
        "SNOWFLAKE.ACCOUNT_USAGE is the account's own metadata database; the local engine has none"
    )

    view: AccountUsageView
    sql: str

    @model_validator(mode="after")
    def _read_only(self) -> AccountUsageQuery:
        import sqlglot
        from sqlglot import exp

        statements = [s for s in sqlglot.parse(self.sql, read="snowflake") if s is not None]
        if len(statements) != 1 or not isinstance(statements[0], exp.Query):
            raise ValueError("an ACCOUNT_USAGE query must be exactly one SELECT")
        tables = {t.sql(dialect="snowflake").split(" ")[0].upper() for t in statements[0].find_all(exp.Table)}
        if f"SNOWFLAKE.ACCOUNT_USAGE.{self.view.value}" not in tables:
            raise ValueError(f"the query does not read SNOWFLAKE.ACCOUNT_USAGE.{self.view.value}")
        return self

    def to_sql(self) -> str:
        return self.sql.strip()


# --- Identity: users, key pairs, SSO, MFA, private connectivity ---------------------------------


class UserType(StrEnum):
    PERSON = "PERSON"
    SERVICE = "SERVICE"


class User(CloudStatement):
    """A login. `TYPE = SERVICE` users cannot use passwords or SSO: key pair (or OAuth) only."""

    kind: ClassVar[str] = "user"
    local_reason: ClassVar[str] = "the local engine has no users or logins"

    name: Ident
    type: UserType
    login_name: str | None = None
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
    default_role: Ident | None = None
    default_warehouse: Ident | None = None
    rsa_public_key: str | None = None
    comment: str = ""

    @model_validator(mode="after")
    def _service_users_use_keys(self) -> User:
        if self.type is UserType.SERVICE and not self.rsa_public_key:
            raise ValueError("a SERVICE user authenticates with a key pair: give rsa_public_key")
        if self.type is UserType.SERVICE and self.email:
            raise ValueError("a SERVICE user is not a person: no email")
        return self

    def to_sql(self) -> str:
        lines = [f"CREATE USER IF NOT EXISTS {self.name}", f"  TYPE = {self.type.value}"]
        if self.login_name:
            lines.append(f"  LOGIN_NAME = {quote_literal(self.login_name)}")
        if self.email:
            lines.append(f"  EMAIL = {quote_literal(self.email)}")
        if self.default_role:
            lines.append(f"  DEFAULT_ROLE = {self.default_role}")
        if self.default_warehouse:
            lines.append(f"  DEFAULT_WAREHOUSE = {self.default_warehouse}")
        if self.rsa_public_key:
            lines.append(f"  RSA_PUBLIC_KEY = {quote_literal(self.rsa_public_key)}")
        if self.comment:
            lines.append(f"  COMMENT = {quote_literal(self.comment)}")
        return "\n".join(lines)


class SetUserPublicKey(CloudStatement):
    """Key rotation: load the new key into slot 2, switch clients over, then unset slot 1."""

    kind: ClassVar[str] = "user"
    local_reason: ClassVar[str] = User.local_reason

    user: Ident
    public_key: str
    slot: int = Field(default=1, ge=1, le=2)

    def to_sql(self) -> str:
        param = "RSA_PUBLIC_KEY" if self.slot == 1 else "RSA_PUBLIC_KEY_2"
        return f"ALTER USER {self.user} SET {param} = {quote_literal(self.public_key)}"


class GrantRoleToUser(CloudStatement):
    kind: ClassVar[str] = "grant"
    local_reason: ClassVar[str] = RoleGrant.local_reason

    role: Ident
    user: Ident

    def to_sql(self) -> str:
        return f"GRANT ROLE {self.role} TO USER {self.user}"


class AuthenticationMethod(StrEnum):
    PASSWORD = "PASSWORD"
    SAML = "SAML"
    KEYPAIR = "KEYPAIR"
    OAUTH = "OAUTH"
    PROGRAMMATIC_ACCESS_TOKEN = "PROGRAMMATIC_ACCESS_TOKEN"


class ClientType(StrEnum):
    SNOWFLAKE_UI = "SNOWFLAKE_UI"
    DRIVERS = "DRIVERS"
    SNOWFLAKE_CLI = "SNOWFLAKE_CLI"
    SNOWSQL = "SNOWSQL"


class MfaEnrollment(StrEnum):
    REQUIRED = "REQUIRED"
    REQUIRED_PASSWORD_ONLY = "REQUIRED_PASSWORD_ONLY"


class AuthenticationPolicy(CloudStatement):
    """Which ways in are allowed (e.g. SAML + key pair, no passwords) and whether MFA is enforced."""

    kind: ClassVar[str] = "authentication policy"
    local_reason: ClassVar[str] = "the local engine has no logins to authenticate"

    name: Ident
    authentication_methods: tuple[AuthenticationMethod, ...] = Field(min_length=1)
    client_types: tuple[ClientType, ...] = ()
    security_integrations: tuple[Ident, ...] = ()
    mfa_enrollment: MfaEnrollment | None = None
    comment: str = ""

    def to_sql(self) -> str:
        def listing(values: tuple[str, ...]) -> str:
            return "(" + ", ".join(quote_literal(str(v)) for v in values) + ")"

        lines = [
            f"CREATE AUTHENTICATION POLICY IF NOT EXISTS {self.name}",
            f"  AUTHENTICATION_METHODS = {listing(tuple(m.value for m in self.authentication_methods))}",
        ]
        if self.client_types:
            lines.append(f"  CLIENT_TYPES = {listing(tuple(c.value for c in self.client_types))}")
        if self.security_integrations:
            lines.append(f"  SECURITY_INTEGRATIONS = {listing(self.security_integrations)}")
        if self.mfa_enrollment:
            lines.append(f"  MFA_ENROLLMENT = '{self.mfa_enrollment.value}'")
        if self.comment:
            lines.append(f"  COMMENT = {quote_literal(self.comment)}")
        return "\n".join(lines)


class PolicyScope(BaseModel):
    """Where an account-level policy is attached: the whole account, or one user."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user: Ident | None = None

    def target(self) -> str:
        return f"USER {self.user}" if self.user else "ACCOUNT"


class SetAuthenticationPolicy(CloudStatement):
    kind: ClassVar[str] = "authentication policy"
    local_reason: ClassVar[str] = AuthenticationPolicy.local_reason

    policy: Ident
    scope: PolicyScope = PolicyScope()

    def to_sql(self) -> str:
        return f"ALTER {self.scope.target()} SET AUTHENTICATION POLICY {self.policy}"


class SetNetworkPolicy(CloudStatement):
    kind: ClassVar[str] = "network policy"
    local_reason: ClassVar[str] = NetworkPolicy.local_reason

    policy: Ident
    scope: PolicyScope = PolicyScope()

    def to_sql(self) -> str:
        return f"ALTER {self.scope.target()} SET NETWORK_POLICY = {self.policy}"


class NetworkRuleType(StrEnum):
    IPV4 = "IPV4"
    AWSVPCEID = "AWSVPCEID"
    AZURELINKID = "AZURELINKID"
    GCPPSCID = "GCPPSCID"


class NetworkRule(CloudStatement):
    """Ingress by IP range or by private endpoint id (AWS PrivateLink VPC endpoint, Azure Private Link)."""

    kind: ClassVar[str] = "network rule"
    local_reason: ClassVar[str] = NetworkPolicy.local_reason

    name: Ident
    type: NetworkRuleType
    values: tuple[str, ...] = Field(min_length=1)
    comment: str = ""

    @model_validator(mode="after")
    def _values_fit_type(self) -> NetworkRule:
        for value in self.values:
            if self.type is NetworkRuleType.IPV4:
                ipaddress.ip_network(value, strict=False)
            elif self.type is NetworkRuleType.AWSVPCEID and not re.match(r"^vpce-[0-9a-f]{8,17}$", value):
                raise ValueError(f"{value!r} is not an AWS VPC endpoint id (vpce-...)")
        return self

    def to_sql(self) -> str:
        values = ", ".join(quote_literal(v) for v in self.values)
        sql = f"CREATE NETWORK RULE IF NOT EXISTS {self.name}\n  TYPE = {self.type.value}\n  VALUE_LIST = ({values})\n  MODE = INGRESS"
        if self.comment:
            sql += f"\n  COMMENT = {quote_literal(self.comment)}"
        return sql


class NetworkPolicyFromRules(CloudStatement):
    """A network policy built from network rules (the current form; IP lists are the legacy one)."""

    kind: ClassVar[str] = "network policy"
    local_reason: ClassVar[str] = NetworkPolicy.local_reason

    name: Ident
    allowed_rules: tuple[Ident, ...] = Field(min_length=1)
    blocked_rules: tuple[Ident, ...] = ()

    def to_sql(self) -> str:
        allowed = ", ".join(quote_literal(r) for r in self.allowed_rules)
        sql = f"CREATE OR REPLACE NETWORK POLICY {self.name}\n  ALLOWED_NETWORK_RULE_LIST = ({allowed})"
        if self.blocked_rules:
            blocked = ", ".join(quote_literal(r) for r in self.blocked_rules)
            sql += f"\n  BLOCKED_NETWORK_RULE_LIST = ({blocked})"
        return sql


class SamlProvider(StrEnum):
    OKTA = "OKTA"
    ADFS = "ADFS"
    CUSTOM = "CUSTOM"


class SamlIntegration(CloudStatement):
    """SSO: the identity provider authenticates (and enforces its MFA); Snowflake trusts its assertion."""

    kind: ClassVar[str] = "security integration"
    local_reason: ClassVar[str] = "SSO needs an identity provider and a login flow; the local engine has no logins"

    name: Ident
    provider: SamlProvider
    issuer: str = Field(min_length=1)
    sso_url: str = Field(pattern=r"^https://")
    x509_cert: str = Field(min_length=1)
    login_label: str = "Single sign-on"

    def to_sql(self) -> str:
        return "\n".join(
            [
                f"CREATE SECURITY INTEGRATION IF NOT EXISTS {self.name}",
                "  TYPE = SAML2",
                "  ENABLED = TRUE",
                f"  SAML2_ISSUER = {quote_literal(self.issuer)}",
                f"  SAML2_SSO_URL = {quote_literal(self.sso_url)}",
                f"  SAML2_PROVIDER = '{self.provider.value}'",
                f"  SAML2_X509_CERT = {quote_literal(self.x509_cert)}",
                f"  SAML2_SP_INITIATED_LOGIN_PAGE_LABEL = {quote_literal(self.login_label)}",
                "  SAML2_ENABLE_SP_INITIATED = TRUE",
            ]
        )


class PrivateLinkConfig(CloudStatement):
    kind: ClassVar[str] = "private connectivity"
    local_reason: ClassVar[str] = (
        "private connectivity joins cloud networks (VPC endpoints); there is no network to join locally"
    )

    def to_sql(self) -> str:
        return "SELECT SYSTEM$GET_PRIVATELINK_CONFIG() AS PRIVATELINK_CONFIG"


# --- Governance: classification, tag-based masking, grant inspection -----------------------------


class Classify(CloudStatement):
    """Snowflake's own PII classifier over a table's sampled values (optionally tagging columns)."""

    kind: ClassVar[str] = "classification"
    local_reason: ClassVar[str] = (
        "SYSTEM$CLASSIFY is a Snowflake service; locally the pattern's own scanner runs instead"
    )

    table: Ident
    auto_tag: bool = False
    sample_count: int = Field(default=10_000, ge=1, le=10_000)

    def to_sql(self) -> str:
        options = f"{{'auto_tag': {str(self.auto_tag).lower()}, 'sample_count': {self.sample_count}}}"
        return f"CALL SYSTEM$CLASSIFY({quote_literal(self.table)}, {options})"


class SetTagMaskingPolicy(CloudStatement):
    """Tag-based masking: every column carrying the tag gets the policy, including future ones."""

    kind: ClassVar[str] = "masking policy"
    local_reason: ClassVar[str] = MaskingPolicy.local_reason

    tag: Ident
    policy: Ident

    def to_sql(self) -> str:
        return f"ALTER TAG {self.tag} SET MASKING POLICY {self.policy}"


class ShowGrants(CloudStatement):
    """`SHOW GRANTS TO ROLE r`: what an account really has, to diff against the declared model."""

    kind: ClassVar[str] = "grant"
    local_reason: ClassVar[str] = RoleGrant.local_reason

    to_role: Ident

    def to_sql(self) -> str:
        return f"SHOW GRANTS TO ROLE {self.to_role}"
