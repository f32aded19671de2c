"""Settings from `.env`, the environment and the platforms' own files: every service is local until configured.

Why one module: the switch between a laptop and a real account must happen in exactly one place,
and it must be impossible to half-switch. A service whose keys are all absent runs locally; a
service with some keys set but not all is an error naming the missing keys. A typo must not
silently fall back to the local engine either: in `.env` an unknown key with a service prefix (or
a lower-case spelling of a real key) is an error suggesting the nearest real key, and a line
python-dotenv cannot parse is an error naming the line; in the process environment, where other
tools set variables with the same prefixes, an unknown key is a one-line warning. Numbers and
ports are checked here, so a bad value is a config error naming its key, not a crash later.

When `.env` and the environment hold no key for Databricks or Snowflake, the platform's own
configuration is used, as its own tools would: a `~/.databrickscfg` profile (Databricks unified
authentication: `DATABRICKS_CONFIG_PROFILE`, `DATABRICKS_CONFIG_FILE`; PAT, OAuth M2M or U2M, all
resolved by the SDK's `Config`) and a Snowflake `connections.toml` connection
(`SNOWFLAKE_DEFAULT_CONNECTION_NAME`, `default_connection_name` in the connector's `config.toml`,
else `default`; read with the connector's own `ConfigManager`); both live in
`expert.runtime.platform_credentials`. Each service remembers where its settings came from
(`source`), so `expert doctor` can say so.

Secret values are `pydantic.SecretStr`, whose `repr`/`str` never show the value, and every
credential (including a URL's user-info or `token=` parameter) is registered with
`expert.runtime.redact`, which masks it in whatever the harness prints.
"""

from __future__ import annotations

import difflib
import io
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import SecretStr

from expert import PROJECT_ROOT
from expert.runtime.errors import ConfigError
from expert.runtime.redact import carries_credential, redact_url, register_secret

Mode = Literal["local", "cloud"]

SERVICE_PREFIXES = ("SNOWFLAKE_", "DATABRICKS_", "KAFKA_", "MLFLOW_", "SPARK_", "LAKEHOUSE_", "ALERT_")
"""Keys with these prefixes are checked against the keys this project reads."""


@dataclass(frozen=True)
class ServiceSpec:
    """Which keys switch a service to cloud mode and which combinations are complete."""

    name: str
    required: tuple[str, ...] = ()
    # At least one of these groups must be fully set (alternative ways to authenticate).
    one_of: tuple[tuple[str, ...], ...] = ()
    optional: tuple[str, ...] = ()
    # Keys that make sense only together (e.g. a SASL user and its password).
    together: tuple[tuple[str, ...], ...] = ()
    secrets: frozenset[str] = frozenset()
    # At most one of these may be set.
    exclusive: tuple[str, ...] = ()
    # Whole numbers, each with its allowed range.
    numbers: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # URLs (or host:port lists): their ports are checked, and credentials inside them are masked.
    urls: tuple[str, ...] = ()
    # Keys that choose an entry of the platform's own configuration file (a profile, a connection).
    selectors: tuple[str, ...] = ()
    # Paths of PEM private keys: the file must exist, be readable and hold a private key.
    key_files: tuple[str, ...] = ()
    local_means: str = ""

    @property
    def activating(self) -> tuple[str, ...]:
        """Keys whose presence means the learner wants the real service."""
        return self.required + tuple(k for group in self.one_of for k in group)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.activating + self.optional + self.selectors


SNOWFLAKE = ServiceSpec(
    name="snowflake",
    required=("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER"),
    one_of=(("SNOWFLAKE_PRIVATE_KEY_FILE",), ("SNOWFLAKE_AUTHENTICATOR",), ("SNOWFLAKE_PASSWORD",)),
    optional=(
        "SNOWFLAKE_PRIVATE_KEY_FILE_PWD",
        "SNOWFLAKE_ROLE",
        "SNOWFLAKE_WAREHOUSE",
        "SNOWFLAKE_DATABASE",
        "SNOWFLAKE_SCHEMA",
        "SNOWFLAKE_HOST",
        "SNOWFLAKE_PORT",
        "SNOWFLAKE_PROTOCOL",
        "SNOWFLAKE_LOGIN_TIMEOUT",
    ),
    secrets=frozenset({"SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_FILE_PWD"}),
    numbers={"SNOWFLAKE_PORT": (1, 65535), "SNOWFLAKE_LOGIN_TIMEOUT": (1, 3600)},
    selectors=("SNOWFLAKE_DEFAULT_CONNECTION_NAME",),
    key_files=("SNOWFLAKE_PRIVATE_KEY_FILE",),
    local_means="fakesnow (DuckDB) under the real snowflake-connector-python API",
)
DATABRICKS = ServiceSpec(
    name="databricks",
    required=("DATABRICKS_HOST",),
    one_of=(("DATABRICKS_TOKEN",), ("DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET")),
    optional=("DATABRICKS_CLUSTER_ID", "DATABRICKS_WAREHOUSE_ID", "DATABRICKS_RETRY_TIMEOUT"),
    secrets=frozenset({"DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET"}),
    numbers={"DATABRICKS_RETRY_TIMEOUT": (1, 3600)},
    urls=("DATABRICKS_HOST",),
    selectors=("DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CONFIG_FILE"),
    local_means="local Spark + Delta Lake; workspace calls are shown, not made",
)
KAFKA = ServiceSpec(
    name="kafka",
    required=("KAFKA_BOOTSTRAP_SERVERS",),
    optional=(
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
    ),
    together=(("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SASL_MECHANISM"),),
    secrets=frozenset({"KAFKA_SASL_PASSWORD"}),
    urls=("KAFKA_BOOTSTRAP_SERVERS",),
    local_means="a single-node Kafka broker (KRaft) this project starts on 127.0.0.1",
)
MLFLOW = ServiceSpec(
    name="mlflow",
    required=("MLFLOW_TRACKING_URI",),
    optional=("MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_REGISTERED_MODEL_NAME"),
    urls=("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"),
    local_means="MLflow tracking and model registry on a SQLite file in the run's workdir",
)
SPARK = ServiceSpec(
    name="spark",
    one_of=(("SPARK_REMOTE",), ("SPARK_MASTER",)),
    exclusive=("SPARK_REMOTE", "SPARK_MASTER"),
    # A Spark Connect URL carries its bearer token as `;token=…`.
    secrets=frozenset({"SPARK_REMOTE"}),
    urls=("SPARK_REMOTE", "SPARK_MASTER"),
    local_means="an in-process local[*] Spark with Delta Lake",
)
ALERTS = ServiceSpec(
    name="alerts",
    required=("ALERT_WEBHOOK_URL",),
    secrets=frozenset({"ALERT_WEBHOOK_URL"}),
    urls=("ALERT_WEBHOOK_URL",),
    local_means="a webhook receiver on 127.0.0.1 standing in for PagerDuty/Slack",
)
SERVICES: tuple[ServiceSpec, ...] = (SNOWFLAKE, DATABRICKS, KAFKA, MLFLOW, SPARK, ALERTS)

STORAGE_KEYS = ("LAKEHOUSE_ROOT", "LAKEHOUSE_S3_ENDPOINT")
"""Read by `expert.runtime.storage`."""
PROJECT_KEYS = frozenset({key for spec in SERVICES for key in spec.keys} | set(STORAGE_KEYS))

TOOL_KEYS = frozenset(
    {
        # Spark's launch scripts and daemons, and what this project sets for them.
        "SPARK_HOME",
        "SPARK_CONF_DIR",
        "SPARK_SCALA_VERSION",
        "SPARK_IDENT_STRING",
        "SPARK_PID_DIR",
        "SPARK_NICENESS",
        "SPARK_ENV_LOADED",
        "SPARK_DIST_CLASSPATH",
        "SPARK_SUBMIT_OPTS",
        "SPARK_PREPEND_CLASSES",
        "SPARK_TESTING",
        "SPARK_USER",
        "SPARK_PRINT_LAUNCH_COMMAND",
        "SPARK_PUBLIC_DNS",
        "SPARK_CONNECT_MODE_ENABLED",
        "SPARK_LOCAL_REMOTE",
        # Set by pyspark itself in the process environment once a SparkContext starts.
        "SPARK_AUTH_SOCKET_TIMEOUT",
        "SPARK_BUFFER_SIZE",
        # Kafka's scripts.
        "KAFKA_HOME",
        "KAFKA_HEAP_OPTS",
        "KAFKA_OPTS",
        "KAFKA_JVM_PERFORMANCE_OPTS",
        "KAFKA_LOG4J_OPTS",
        "KAFKA_JMX_OPTS",
        "KAFKA_GC_LOG_OPTS",
        "KAFKA_DEBUG",
        "KAFKA_CLUSTER_ID",
        # The Snowflake connector and tools built on it (schemachange, the Snowflake CLI).
        "SNOWFLAKE_HOME",
        "SNOWFLAKE_CONNECTIONS",
        "SNOWFLAKE_PRIVATE_KEY_PATH",
        "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
        "SNOWFLAKE_SESSION_PARAMETERS",
    }
)
TOOL_PREFIXES = (
    "SPARK_LOCAL_",
    "SPARK_LOG_",
    "SPARK_WORKER_",
    "SPARK_MASTER_",
    "SPARK_DAEMON_",
    "SPARK_DRIVER_",
    "SPARK_EXECUTOR_",
    "SPARK_HISTORY_",
    "SPARK_CONNECT_",
    "SNOWFLAKE_CONNECTIONS_",
)
"""Environment variables other tools read: never warned about in the environment (but in `.env`,
which this project never exports, they would do nothing, so there they are errors too)."""


@dataclass(frozen=True)
class ServiceConfig:
    """One service's resolved mode and values (secrets wrapped), and where they came from."""

    spec: ServiceSpec
    mode: Mode
    values: Mapping[str, str | SecretStr] = field(default_factory=dict)
    source: str = "defaults"
    """Where the settings came from: `.env (<path>)`, `environment`, a profile or connection file."""
    profile: str = ""
    """The Databricks profile or Snowflake connection the platform file provides ("" for `.env`)."""
    profile_file: str = ""
    endpoint: str = ""
    """The host the service talks to, without credentials (for messages and reachability probes)."""

    @property
    def is_cloud(self) -> bool:
        return self.mode == "cloud"

    @property
    def host(self) -> str:
        """`endpoint` without its scheme: how messages name the server."""
        return self.endpoint.split("://", 1)[-1]

    def get(self, key: str, default: str | None = None) -> str | None:
        """A non-secret value (secrets must be read with `secret`)."""
        if key in self.spec.secrets:
            raise KeyError(f"{key} is a secret: read it with .secret()")
        value = self.values.get(key)
        return value if isinstance(value, str) else default

    def secret(self, key: str) -> SecretStr | None:
        value = self.values.get(key)
        return value if isinstance(value, SecretStr) else None

    def number(self, key: str, default: int) -> int:
        """A whole-number setting (validated when the settings were read), or `default` if unset."""
        value = self.get(key)
        return int(value) if value else default

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_shown(v)}" for k, v in self.values.items())
        return f"ServiceConfig({self.spec.name}, {self.mode}, from {self.source}{', ' if shown else ''}{shown})"


def _shown(value: str | SecretStr) -> str:
    if isinstance(value, SecretStr):
        return repr(value)
    return repr(redact_url(value) if carries_credential(value) else value)


@dataclass(frozen=True)
class Settings:
    """Every service's configuration, resolved once per run."""

    snowflake: ServiceConfig
    databricks: ServiceConfig
    kafka: ServiceConfig
    mlflow: ServiceConfig
    spark: ServiceConfig
    alerts: ServiceConfig

    def services(self) -> tuple[ServiceConfig, ...]:
        return (self.snowflake, self.databricks, self.kafka, self.mlflow, self.spark, self.alerts)


def check_number(key: str, value: str, low: int, high: int) -> None:
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ConfigError(
            f"{key}={value!r} is not a whole number from {low} to {high}",
            f"set {key} to a number of {'seconds' if 'TIMEOUT' in key else 'the port'} in that range, or remove it "
            "for the default",
        )


def _check_url(key: str, value: str) -> None:
    """Ports in a URL or a `host:port[,host:port]` list must be 1-65535."""
    for item in value.split(",") if "://" not in value else [value]:
        target = item.strip() if "://" in item else f"//{item.strip()}"
        try:
            port = urlsplit(target).port
        except ValueError:
            port = 0
        if port == 0:
            raise ConfigError(
                f"{key} has a port that is not a number from 1 to 65535 ({redact_url(item) if '://' in item else item})",
                f"fix the port in {key}",
            )


def register_url_credentials(value: str) -> None:
    """Register a URL that carries a credential, and each credential inside it, for masking."""
    register_secret(value)
    try:
        parts = urlsplit(value)
    except ValueError:
        return
    for piece in (parts.password, parts.path if parts.query == "" and "/services/" in parts.path else None):
        if piece:
            register_secret(piece)
    for chunk in [*value.split(";"), *parts.query.split("&")]:
        name, _, secret = chunk.partition("=")
        if secret and name.strip().lower() in ("token", "password", "secret", "client_secret", "api_key", "sig"):
            register_secret(secret)


def _register_and_check(spec: ServiceSpec, present: Mapping[str, str]) -> None:
    """Register the service's credentials for masking, then check its numbers and ports."""
    for key in present.keys() & spec.secrets:
        if key in spec.urls:
            register_url_credentials(present[key])
        register_secret(present[key])
    for key in present.keys() & set(spec.urls):
        if carries_credential(present[key]):
            register_url_credentials(present[key])
        _check_url(key, present[key])
    for key, (low, high) in spec.numbers.items():
        if key in present:
            check_number(key, present[key], low, high)
    for key in spec.key_files:
        if key in present:
            _check_key_file(key, Path(present[key]).expanduser())


def _check_key_file(key: str, path: Path) -> None:
    """A key file the connector could not use is a config error naming it, before any connection."""
    fix = f"point {key} at your PEM private key file (e.g. rsa_key.p8), readable by you"
    if not path.is_file():
        raise ConfigError(f"{key}={path}: there is no such file", fix)
    try:
        head = path.read_bytes()[:100]
    except OSError as exc:
        raise ConfigError(f"{key}={path} cannot be read: {exc.strerror or exc}", fix) from None
    if b"-----BEGIN" not in head or b"PRIVATE KEY" not in head:
        raise ConfigError(f"{key}={path} is not a PEM private key (no -----BEGIN … PRIVATE KEY----- line)", fix)


def resolve_service(spec: ServiceSpec, env: Mapping[str, str], *, source: str = "environment") -> ServiceConfig:
    """Decide local or cloud for one service; raise `ConfigError` naming missing keys if half-set."""
    present = {k: env[k].strip() for k in spec.keys if env.get(k, "").strip() and k not in spec.selectors}
    _register_and_check(spec, present)
    if not any(k in present for k in spec.activating):
        if present:
            missing = list(spec.required) or [" or ".join(" + ".join(g) for g in spec.one_of)]
            raise ConfigError(
                f"{spec.name}: {', '.join(sorted(present))} set, but not {', '.join(missing)}",
                f"set {', '.join(missing)} in .env to use a real {spec.name}, "
                f"or remove {', '.join(sorted(present))} to run locally",
            )
        return ServiceConfig(spec, "local")
    missing = [k for k in spec.required if k not in present]
    if spec.one_of and not any(all(k in present for k in group) for group in spec.one_of):
        missing.append("one of " + " | ".join(" + ".join(group) for group in spec.one_of))
    for group in spec.together:
        partial = [k for k in group if k in present]
        if partial and len(partial) < len(group):
            missing.extend(k for k in group if k not in present)
    if missing:
        raise ConfigError(
            f"{spec.name} settings are incomplete: missing {', '.join(missing)}",
            f"add {', '.join(missing)} to .env (see .env.example), or remove the other "
            f"{spec.name.upper()}_* keys to run {spec.name} locally",
        )
    both = [k for k in spec.exclusive if k in present]
    if len(both) > 1:
        raise ConfigError(
            f"{spec.name}: {' and '.join(both)} are both set",
            f"keep only one of {', '.join(both)}",
        )
    values: dict[str, str | SecretStr] = {k: SecretStr(v) if k in spec.secrets else v for k, v in present.items()}
    return ServiceConfig(spec, "cloud", values, source=source, endpoint=endpoint_of(spec, present))


def endpoint_of(spec: ServiceSpec, present: Mapping[str, str]) -> str:
    """The host a cloud service talks to, with every credential removed."""
    if spec is SNOWFLAKE:
        host = present.get("SNOWFLAKE_HOST") or f"{present.get('SNOWFLAKE_ACCOUNT', '')}.snowflakecomputing.com"
        protocol = present.get("SNOWFLAKE_PROTOCOL") or "https"
        port = present.get("SNOWFLAKE_PORT")
        return f"{protocol}://{host}" + (f":{port}" if port else "")
    for key in spec.urls:
        if key in present:
            value = present[key]
            return redact_url(value) if "://" in value else value
    return ""


def default_env_file() -> Path:
    """`EXPERT_ENV_FILE` if set (tests point it at an empty file), else the repository's `.env`."""
    return Path(os.environ.get("EXPERT_ENV_FILE") or PROJECT_ROOT / ".env")


def read_env_file(path: Path) -> dict[str, str]:
    """The keys of a `.env` file, refusing a line it cannot parse and a key this project does not read.

    python-dotenv skips a line it cannot parse (and after an unclosed quote on line 1 it reads
    nothing at all), which would silently run everything locally; here that is an error naming the
    line. A key with a service prefix that is not one of ours, or a lower-case spelling of one, is an
    error suggesting the nearest real key.
    """
    if not path.is_file():
        return {}
    text = path.read_text()
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.string.splitlines()[0] if binding.original.string.strip() else ""
            raise ConfigError(
                f"{path}, line {binding.original.line}: python-dotenv cannot parse {line[:60]!r}",
                "write KEY=value (quote a value with spaces or # in it, and close every quote); see .env.example",
            )
    values = {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}
    for key in values:
        problem = _unknown_key(key)
        if problem:
            raise ConfigError(f"{path}: {problem}", _unknown_key_fix(key))
    return values


def _unknown_key(key: str) -> str:
    """Why a prefixed key is not one this project reads ("" for keys it reads or does not check)."""
    upper = key.upper()
    if not upper.startswith(SERVICE_PREFIXES):
        return ""
    if key in PROJECT_KEYS:
        return ""
    if upper in PROJECT_KEYS:
        return f"{key} is not a setting: keys are upper case ({upper})"
    if _is_tool_key(upper):
        return f"{key} is read by another tool from the process environment, never from this project's .env"
    suggestion = difflib.get_close_matches(upper, sorted(PROJECT_KEYS), n=1, cutoff=0.6)
    return f"{key} is not a setting of this project" + (f" (did you mean {suggestion[0]}?)" if suggestion else "")


def _unknown_key_fix(key: str) -> str:
    upper = key.upper()
    if upper in PROJECT_KEYS:
        return f"rename it to {upper}"
    if _is_tool_key(upper):
        return f"export {key} in your shell instead, or remove it from .env"
    suggestion = difflib.get_close_matches(upper, sorted(PROJECT_KEYS), n=1, cutoff=0.6)
    if suggestion:
        return f"rename it to {suggestion[0]}, or remove it; .env.example lists every setting"
    return "remove it; .env.example lists every setting"


def _is_tool_key(upper: str) -> bool:
    return upper in TOOL_KEYS or upper.startswith(TOOL_PREFIXES)


LARGE_TOOL_FAMILIES = ("MLFLOW_", "DATABRICKS_")
"""MLflow and the Databricks SDK read hundreds of variables of their own: in the environment, one of
these is warned about only when it is nearly one of this project's keys (a typo)."""


def _silent_in_environment(upper: str) -> bool:
    if _is_tool_key(upper):
        return True
    if upper.startswith(LARGE_TOOL_FAMILIES):
        return not difflib.get_close_matches(upper, sorted(PROJECT_KEYS), n=1, cutoff=0.85)
    return False


def local_child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for a child process that runs on the local engines whatever the learner configured:
    no service settings from the environment, and no `.env` (an exercise check, the class archive's training)."""
    service_keys = {key for spec in SERVICES for key in spec.keys}
    return {**{k: v for k, v in environ.items() if k not in service_keys}, "EXPERT_ENV_FILE": os.devnull}


_warned: set[str] = set()


def warn_about_environment(environ: Mapping[str, str]) -> None:
    """One line on stderr (once per process) naming unknown prefixed keys in the environment."""
    unknown = sorted(
        k for k in environ if k not in _warned and _unknown_key(k) and not _silent_in_environment(k.upper())
    )
    if not unknown:
        return
    _warned.update(unknown)
    hints = []
    for key in unknown:
        match = difflib.get_close_matches(key.upper(), sorted(PROJECT_KEYS), n=1, cutoff=0.6)
        hints.append(f"{key} (did you mean {match[0]}?)" if match and match[0] != key else key)
    print(
        f"warning: ignoring environment variable(s) this project does not read: {', '.join(hints)}",
        file=sys.stderr,
    )


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Merge `.env` and the process environment (the environment wins) and resolve every service.

    A service with no key in either falls back to its platform's own configuration file (a
    Databricks profile, a Snowflake connection), found from `HOME` and the platforms' own
    variables in `environ` (the process environment when not given).
    """
    env_file = env_file or default_env_file()
    from_file = read_env_file(env_file)
    process = dict(os.environ if environ is None else environ)
    if environ is None:
        warn_about_environment(process)
    merged = {**from_file, **process}
    resolved = {}
    for spec in SERVICES:
        keys = [k for k in spec.keys if merged.get(k, "").strip()]
        in_process = [k for k in keys if process.get(k, "").strip()]
        source = "environment" if in_process and len(in_process) == len(keys) else f".env ({env_file})"
        if in_process and len(in_process) < len(keys):
            source = f".env ({env_file}) and the environment"
        config = resolve_service(spec, merged, source=source)
        if not config.is_cloud and spec is DATABRICKS:
            from expert.runtime.platform_credentials import databricks_profile

            config = databricks_profile(merged) or config
        elif not config.is_cloud and spec is SNOWFLAKE:
            from expert.runtime.platform_credentials import snowflake_connection

            config = snowflake_connection(merged) or config
        resolved[spec.name] = config
    return Settings(**resolved)
