"""dbt, run for real: the lakehouse's serving marts built by dbt-core and dbt-snowflake.

Why a module: dbt lives in its own virtualenv (`scripts/install-dbt.sh`, `.cache/tools/dbt/`;
dbt-core 1.11 needs protobuf < 7, the project pins 7), so a pattern cannot import it. It runs
dbt's own executable as a subprocess, against the run's Snowflake: the account from `.env`, or
locally fakesnow's server on 127.0.0.1 (`SnowflakeEndpoint` from `snowflake_endpoint`), so the
real dbt-snowflake adapter sends its real SQL over the network to the tables the pattern wrote.

- `write_profile` builds `profiles.yml` in the run's workdir (mode 0600) from the endpoint.
  Secrets never enter the file, the command line or a printed line: the profile reads them with
  `env_var('DBT_ENV_SECRET_…')` from the subprocess's environment, and dbt scrubs variables with
  that prefix from its logs.
- `dbt_build` runs `dbt build` (models and their tests, in DAG order: a failing test skips
  everything downstream of it) and parses `target/run_results.json` into a `DbtResult`.
- `dbt_docs` runs `dbt docs generate` and says which models the catalog holds.
- `dbt_gate` is the release gate: a failing dbt test blocks the publish, naming the test.

What the local engine (fakesnow 0.12.1) cannot do, measured with this project:
- dbt-snowflake's default incremental path. Its temporary view gets a qualified name, which DuckDB
  refuses (`Parser Error: TEMPORARY table names can *only* use the "temp" catalog`), and through
  a transient table fakesnow's rewrite of dbt's MERGE fails (`Binder Error: Ambiguous reference to
  column name ...`). The incremental mart takes `delete+insert` through a transient table on the
  `local` target (dbt/lakehouse/models/marts/bi_daily_revenue.sql).
- `TRANSIENT`: fakesnow creates a plain table (sqlglot logs "Unsupported property transientproperty").
- The docs catalog: `dbt docs generate` succeeds but its catalog lacks the views (the staging
  models); `dbt_docs` reports which.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import snowflake.connector
import yaml

from expert import PROJECT_ROOT
from expert.runtime.errors import ExpertError
from expert.runtime.platform_credentials import read_snowflake_connections
from expert.runtime.snowflake import SnowflakeEndpoint
from expert.runtime.timing import stopwatch

DBT_PROJECT = PROJECT_ROOT / "dbt" / "lakehouse"
"""The lakehouse's dbt project (sources: the published gold star; marts: the BI relations)."""
PROFILE_NAME = "lakehouse"
INSTALL_FIX = "run `make setup` (or `bash scripts/install-dbt.sh`), which installs dbt in its own virtualenv"
DEFAULT_TIMEOUT_S = 600
SECRET_FIELDS = {
    "password": ("password", "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD"),
    "private_key_file_pwd": ("private_key_passphrase", "DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
}
"""Secret connector argument → (profile field, the environment variable it is read from; dbt hides
the values of `DBT_ENV_SECRET_*` variables in its logs)."""
PROFILE_KEYS = {
    "role": "role",
    "warehouse": "warehouse",
    "host": "host",
    "port": "port",
    "protocol": "protocol",
    "private_key_file": "private_key_path",
}
"""Optional connector argument → the dbt-snowflake profile field that carries it."""
FAILED = frozenset({"error", "fail", "runtime error"})


def dbt_venv() -> Path:
    """Where `scripts/install-dbt.sh` puts dbt: `DBT_VENV`, else `<EXPERT_CACHE_DIR or .cache>/tools/dbt`."""
    if os.environ.get("DBT_VENV"):
        return Path(os.environ["DBT_VENV"])
    return Path(os.environ.get("EXPERT_CACHE_DIR") or PROJECT_ROOT / ".cache") / "tools" / "dbt"


def dbt_executable() -> Path:
    """dbt's own executable; a clear error with the fix when its environment is not installed."""
    path = dbt_venv() / "bin" / "dbt"
    if not path.is_file():
        raise ExpertError(f"dbt is not installed: {path} does not exist", INSTALL_FIX)
    return path


# ---------------------------------------------------------------------------------- the profile


@dataclass(frozen=True)
class DbtProfile:
    """A `profiles.yml` written for one run, and the environment its secrets travel in."""

    directory: Path
    target: str
    output: Mapping[str, Any]
    """The target's settings exactly as written: secrets appear only as `env_var(...)` references."""
    secret_env: Mapping[str, str] = field(repr=False)

    @property
    def path(self) -> Path:
        return self.directory / "profiles.yml"

    def describe(self) -> str:
        """One printable line: where dbt connects and how it authenticates, never a secret."""
        out = self.output
        where = f"{out.get('host') or str(out['account']) + '.snowflakecomputing.com'}"
        if out.get("port"):
            where += f":{out['port']}"
        auth = "key pair" if "private_key_path" in out else str(out.get("authenticator") or "password")
        if self.secret_env:
            auth += f" (secret in ${', $'.join(self.secret_env)})"
        return (
            f"dbt target '{self.target}' → {where} as {out['user']}, {out['database']}.{out['schema']}, "
            f"auth: {auth}, profile {self.path} (mode 0600)"
        )


def snowflake_output(endpoint: SnowflakeEndpoint, schema: str, threads: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The dbt-snowflake target for an endpoint, and the secret values it reads from the environment.

    The endpoint's connector arguments (the one place `.env` is turned into a connection) map to
    profile fields, over the `connections.toml` connection they name, if any (dbt cannot read that
    file, so its password or key passphrase travels in the environment like one from `.env`); `login_timeout` becomes `connect_timeout`, the query tag is kept, and a
    key-pair login needs no `authenticator` (dbt-snowflake uses the key when `private_key_path` is set).
    """
    args = {**connection_entry(endpoint.connect_args), **endpoint.connect_args}
    output: dict[str, Any] = {
        "type": "snowflake",
        "account": args["account"],
        "user": args["user"],
        "database": endpoint.database,
        "schema": schema,
        "threads": threads,
        "connect_retries": 0,
    }
    output.update({field_: args[key] for key, field_ in PROFILE_KEYS.items() if args.get(key)})
    if args.get("authenticator") and args["authenticator"] != "SNOWFLAKE_JWT":
        output["authenticator"] = args["authenticator"]
    if args.get("login_timeout"):
        output["connect_timeout"] = int(args["login_timeout"])
    tag = (args.get("session_parameters") or {}).get("QUERY_TAG")
    if tag:
        output["query_tag"] = tag
    secrets: dict[str, str] = {}
    for key, (field_, variable) in SECRET_FIELDS.items():
        if args.get(key):
            output[field_] = '{{ env_var("' + variable + '") }}'
            secrets[variable] = str(args[key])
    return output, secrets


def connection_entry(args: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of the `connections.toml` connection the connector arguments name (empty when none).

    The connector reads that file itself; dbt-snowflake cannot, so its fields (secrets included)
    are read here, the way the settings read it, for `snowflake_output` to map.
    """
    name, path = args.get("connection_name"), args.get("connections_file_path")
    if not name or not path:
        return {}
    connections, _ = read_snowflake_connections(Path(path))
    if str(name) not in connections:
        raise ExpertError(f"{path} has no connection [{name}]", "set SNOWFLAKE_DEFAULT_CONNECTION_NAME to one it has")
    return {str(k): v for k, v in dict(connections[str(name)]).items()}


def write_profile(endpoint: SnowflakeEndpoint, directory: Path, *, schema: str, threads: int = 2) -> DbtProfile:
    """Write `profiles.yml` for the endpoint into `directory`, readable by its owner only.

    The target is named after the mode (`local` or `cloud`): models that must take another path on
    the local engine test `target.name == 'local'`.
    """
    output, secrets = snowflake_output(endpoint, schema, threads)
    document = {PROFILE_NAME: {"target": endpoint.mode, "outputs": {endpoint.mode: output}}}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "profiles.yml"
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
    return DbtProfile(directory, endpoint.mode, output, secrets)


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class NodeResult:
    """One node of a dbt invocation, from `run_results.json`."""

    unique_id: str
    name: str
    resource_type: str
    status: str
    seconds: float
    rows: int | None
    """For a test, how many rows failed it; for a model built by `dbt_build`, the rows its relation
    holds after the run (counted: Snowflake answers a CREATE with one status row, not the rows written)."""
    message: str
    """dbt's own word: the adapter's status (`SUCCESS 4`: rows an incremental run inserted) or the error."""
    relation: str | None

    @property
    def failed(self) -> bool:
        return self.status in FAILED


@dataclass(frozen=True)
class DbtResult:
    """What one `dbt` invocation did: every node, its exit code, and where its artefacts are."""

    command: tuple[str, ...]
    """The arguments after `dbt` (no secret is ever among them)."""
    exit_code: int
    seconds: float
    nodes: tuple[NodeResult, ...]
    target_dir: Path
    log_file: Path

    @property
    def tests(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.resource_type == "test")

    @property
    def models(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.resource_type == "model")

    @property
    def failures(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.failed)

    @property
    def skipped(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.status == "skipped")

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.failures

    def table(self) -> list[dict[str, Any]]:
        """Rows for a pattern's `run.table`: one per node, in execution order."""
        return [
            {
                "node": n.name,
                "type": n.resource_type,
                "status": n.status,
                "rows": "" if n.rows is None else n.rows,
                "seconds": round(n.seconds, 2),
            }
            for n in self.nodes
        ]


def parse_run_results(path: Path) -> tuple[NodeResult, ...]:
    """The nodes of `run_results.json` (dbt's artefact schema v6), in the order dbt finished them."""
    document = json.loads(path.read_text(encoding="utf-8"))
    nodes = []
    for result in document["results"]:
        unique_id = result["unique_id"]
        resource_type, _package, name, *_ = unique_id.split(".")
        rows = result.get("failures") if resource_type == "test" else None
        nodes.append(
            NodeResult(
                unique_id=unique_id,
                name=name,
                resource_type=resource_type,
                status=str(result["status"]),
                seconds=float(result.get("execution_time") or 0.0),
                rows=None if rows is None else int(rows),
                message=str(result.get("message") or ""),
                relation=result.get("relation_name"),
            )
        )
    return tuple(nodes)


# ---------------------------------------------------------------------------------- running dbt


def run_dbt(
    arguments: Sequence[str],
    profile: DbtProfile,
    workdir: Path,
    *,
    project_dir: Path = DBT_PROJECT,
    variables: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> DbtResult:
    """Run one dbt command in dbt's own environment; its artefacts and logs go under `workdir`.

    The subprocess gets the secrets in its environment, not on its command line, and no
    PYTHONPATH (dbt imports only its own virtualenv). A dbt that exits without writing
    `run_results.json` (a profile it cannot read, a project that does not parse, a database it
    cannot reach) is an `ExpertError` carrying dbt's own last lines, which name the file or host.
    Commands that run no node (`parse`) give a result without nodes.
    """
    executable = dbt_executable()
    workdir = workdir.resolve()  # dbt reads a relative --target-path from the project directory, not from here
    target_dir, log_dir = workdir / "target", workdir / "logs"
    results_file = target_dir / "run_results.json"
    results_file.unlink(missing_ok=True)
    command = (
        *arguments,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profile.directory),
        "--target",
        profile.target,
        "--target-path",
        str(target_dir),
        "--log-path",
        str(log_dir),
        "--no-version-check",
        "--no-use-colors",
        *(("--vars", json.dumps(dict(variables), sort_keys=True)) if variables else ()),
    )
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env.update(
        {
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DO_NOT_TRACK": "1",
            "SNOWFLAKE_DISABLE_PLATFORM_DETECTION": "true",
            **profile.secret_env,
        }
    )
    with stopwatch() as watch:
        try:
            completed = subprocess.run(
                [str(executable), *command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ExpertError(
                f"dbt {arguments[0]} did not finish within {timeout:.0f} s (its log: {log_dir / 'dbt.log'})",
                "look at the log for the statement that hung; raise the timeout for a large build",
            ) from None
    if completed.returncode != 0 and not results_file.is_file():
        tail = "\n".join(line for line in completed.stdout.splitlines()[-12:] if line.strip())
        raise ExpertError(
            f"dbt {arguments[0]} stopped before running any node (exit {completed.returncode}):\n{tail}",
            "fix what dbt names above (the profile is in the run's workdir; the project in "
            f"{project_dir.relative_to(PROJECT_ROOT) if project_dir.is_relative_to(PROJECT_ROOT) else project_dir})",
        )
    return DbtResult(
        tuple(command),
        completed.returncode,
        watch.seconds,
        parse_run_results(results_file) if results_file.is_file() else (),
        target_dir,
        log_dir / "dbt.log",
    )


def require_free_local_engine(endpoint: SnowflakeEndpoint) -> None:
    """Refuse a local build while this process holds fakesnow's in-process engine (`fakesnow.patch`).

    dbt reaches the local database files through fakesnow's server; DuckDB lets one engine attach a
    file at a time, so with an in-process session open on the same files the server's login fails
    (`Unique file handle conflict: Cannot attach "LAKEHOUSE" ... already attached`) and dbt only
    says `Could not connect to Snowflake backend after 2 attempt(s)`. The patch also reroutes this
    process's own connections (the row counts) past the server.
    """
    if endpoint.mode == "local" and isinstance(snowflake.connector.connect, mock.Mock):
        raise ExpertError(
            "a local Snowflake session is open in this process (fakesnow's in-process engine), so dbt, "
            "which reaches the same database files through the local server, cannot attach them",
            "close the `run.snowflake(...)` block before the dbt step (the tables stay in the workdir), "
            "or open the pattern's sessions through the endpoint: `run.snowflake(endpoint=endpoint)`",
        )


@dataclass(frozen=True)
class ProjectSummary:
    """What `dbt parse` found in the project (from `manifest.json`)."""

    models: tuple[str, ...]
    tests: tuple[str, ...]
    sources: tuple[str, ...]
    seconds: float


def dbt_parse(endpoint: SnowflakeEndpoint, workdir: Path, *, target_schema: str = "MARTS") -> ProjectSummary:
    """`dbt parse`: the project's YAML, Jinja and references are valid (no database is contacted)."""
    profile = write_profile(endpoint, workdir, schema=target_schema)
    result = run_dbt(["parse"], profile, workdir, variables={"gold_database": endpoint.database})
    manifest = json.loads((result.target_dir / "manifest.json").read_text(encoding="utf-8"))
    nodes = manifest["nodes"].values()
    return ProjectSummary(
        models=tuple(sorted(n["name"] for n in nodes if n["resource_type"] == "model")),
        tests=tuple(sorted(n["name"] for n in nodes if n["resource_type"] == "test")),
        sources=tuple(sorted(f"{s['source_name']}.{s['name']}" for s in manifest["sources"].values())),
        seconds=result.seconds,
    )


def dbt_build(
    endpoint: SnowflakeEndpoint,
    workdir: Path,
    *,
    gold_schema: str = "GOLD",
    target_schema: str = "MARTS",
    select: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT_S,
) -> DbtResult:
    """`dbt build` of the lakehouse project on the endpoint's database: the one step a pattern calls.

    The sources are `<endpoint database>.<gold_schema>` (where the gold star was published), the
    marts go to `target_schema` and the staging views to `STAGING`, in the same database. `select`
    narrows the build with dbt's node selection (e.g. `source:gold.daily_sales` tests one source),
    cautiously: a test runs only when every node it reads is selected (a reconciliation against an
    unbuilt mart is left out instead of failing).
    """
    require_free_local_engine(endpoint)
    profile = write_profile(endpoint, workdir, schema=target_schema)
    narrowed = ("--select", *select, "--indirect-selection", "cautious") if select else ()
    arguments = ["build", *narrowed]
    variables = {"gold_database": endpoint.database, "gold_schema": gold_schema}
    with local_engine_quiet(endpoint):
        result = run_dbt(arguments, profile, workdir, variables=variables, timeout=timeout)
        return count_model_rows(endpoint, result)


@contextlib.contextmanager
def local_engine_quiet(endpoint: SnowflakeEndpoint) -> Iterator[None]:
    """Locally, hush sqlglot's warnings while dbt runs: the fakesnow server runs in this process
    and logs one line per SQL form it passes through untranslated (`show user functions`, the
    `TRANSIENT` property), which would bury the pattern's output. Errors still surface."""
    if endpoint.mode != "local":
        yield
        return
    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def count_model_rows(endpoint: SnowflakeEndpoint, result: DbtResult) -> DbtResult:
    """The result with each built model's row count read from its relation."""
    built = [n for n in result.models if n.status == "success" and n.relation]
    if not built:
        return result
    with endpoint.session() as session:
        counts = {n.unique_id: int(session.scalar(f"SELECT COUNT(*) FROM {n.relation}")) for n in built}
    nodes = tuple(
        dataclasses.replace(n, rows=counts[n.unique_id]) if n.unique_id in counts else n for n in result.nodes
    )
    return dataclasses.replace(result, nodes=nodes)


@dataclass(frozen=True)
class DocsResult:
    """`dbt docs generate`: the static site's files, and which models its catalog describes."""

    result: DbtResult
    index: Path
    catalogued: tuple[str, ...]
    """Models whose columns the catalog holds (read from the database's information schema)."""
    missing: tuple[str, ...]
    """Models dbt knows (manifest) that the catalog lacks."""


def dbt_docs(
    endpoint: SnowflakeEndpoint,
    workdir: Path,
    *,
    gold_schema: str = "GOLD",
    target_schema: str = "MARTS",
    timeout: float = DEFAULT_TIMEOUT_S,
) -> DocsResult:
    """`dbt docs generate` after a build: the documentation site, and the models its catalog missed."""
    require_free_local_engine(endpoint)
    profile = write_profile(endpoint, workdir, schema=target_schema)
    variables = {"gold_database": endpoint.database, "gold_schema": gold_schema}
    with local_engine_quiet(endpoint):
        result = run_dbt(["docs", "generate"], profile, workdir, variables=variables, timeout=timeout)
    manifest = json.loads((result.target_dir / "manifest.json").read_text(encoding="utf-8"))
    catalog = json.loads((result.target_dir / "catalog.json").read_text(encoding="utf-8"))
    models = sorted(uid for uid, node in manifest["nodes"].items() if node["resource_type"] == "model")
    catalogued = tuple(uid.split(".")[-1] for uid in models if uid in catalog["nodes"])
    missing = tuple(uid.split(".")[-1] for uid in models if uid not in catalog["nodes"])
    return DocsResult(result, result.target_dir / "index.html", catalogued, missing)


# ---------------------------------------------------------------------------------- Databricks: shown, not run

DATABRICKS_NOT_LOCAL = (
    "dbt on the Databricks side runs against a SQL warehouse with dbt-databricks; locally its stand-in, "
    "dbt-spark in session mode, needs a second dbt environment with its own pyspark and starts a JVM per "
    "build, which costs more than the whole Snowflake build (dbt/README.md has the measurement)"
)
"""Why the Databricks-side dbt step is a cloud-only step here."""


def dbt_databricks_step(catalog: str = "main", gold_schema: str = "lakehouse") -> tuple[str, str]:
    """The dbt-databricks profile and the command that build this same project on Databricks.

    The gold star is the Delta tables themselves (`<catalog>.<gold_schema>.gold_fact_sales`, ...),
    so the sources take the `gold_` prefix; the workspace and warehouse come from the `.env` keys
    the project already reads, the token from the environment only.
    """
    profile = f"""# profiles.yml: the token is read from the environment, never written here
lakehouse:
  target: databricks
  outputs:
    databricks:
      type: databricks
      host: "{{{{ env_var('DBT_DATABRICKS_HOST') }}}}"
      http_path: "/sql/1.0/warehouses/{{{{ env_var('DATABRICKS_WAREHOUSE_ID') }}}}"
      token: "{{{{ env_var('DBT_ENV_SECRET_DATABRICKS_TOKEN') }}}}"
      catalog: {catalog}
      schema: marts
      threads: 4"""
    variables = json.dumps({"gold_database": catalog, "gold_schema": gold_schema, "gold_prefix": "gold_"})
    command = (
        "pip install dbt-core==1.11.16 dbt-databricks==1.12.6   # its own environment\n"
        'export DBT_DATABRICKS_HOST="${DATABRICKS_HOST#https://}"   # dbt wants the host without its scheme\n'
        'export DBT_ENV_SECRET_DATABRICKS_TOKEN="$DATABRICKS_TOKEN"\n'
        f"dbt build --project-dir dbt/lakehouse --target databricks --vars '{variables}'"
    )
    return profile, command


# ---------------------------------------------------------------------------------- the release gate


@dataclass(frozen=True)
class GateDecision:
    """Whether a release may be published, and, when not, exactly which dbt nodes stop it."""

    publish: bool
    blocking: tuple[NodeResult, ...]
    reason: str

    @property
    def failing_tests(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.blocking if n.resource_type == "test")


def dbt_gate(result: DbtResult) -> GateDecision:
    """The release gate: publish only when dbt ran cleanly and every dbt test it ran passed.

    Blocks on a failing or erroring node (named, with its message), on a non-zero exit, and on a
    build that ran no test at all (nothing vouches for the data).
    """
    blocking = result.failures
    if blocking:
        names = ", ".join(
            f"{n.name} ({n.status}: {n.message.splitlines()[0] if n.message else 'no message'})" for n in blocking
        )
        skipped = f"; {len(result.skipped)} downstream nodes skipped" if result.skipped else ""
        return GateDecision(False, blocking, f"dbt blocks the publish: {names}{skipped}")
    if result.exit_code != 0:
        return GateDecision(False, (), f"dbt exited {result.exit_code} without a failing node: see {result.log_file}")
    if not result.tests:
        return GateDecision(False, (), "dbt ran no test: nothing vouches for this release")
    return GateDecision(True, (), f"dbt: {len(result.tests)} tests passed, {len(result.models)} models built")
