"""Settings from `.env` and the environment: every service is local until its settings are complete.

Why one module: the switch between a laptop and a real account must happen in exactly one place,
and it must be impossible to half-switch. A service whose keys are all absent runs locally; a
service with some keys set but not all is an error naming the missing keys (a typo in `.env`
must not silently fall back to the local engine). Secret values are wrapped in `Secret`, whose
`repr`/`str` never show the value, so settings can be printed, logged or put in an exception.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values

from expert import PROJECT_ROOT
from expert.runtime.errors import ConfigError

Mode = Literal["local", "cloud"]


class Secret:
    """A credential. Its value is only reachable through `reveal()`, at the point of use."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


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
    local_means: str = ""

    @property
    def activating(self) -> tuple[str, ...]:
        """Keys whose presence means the learner wants the real service."""
        return self.required + tuple(k for group in self.one_of for k in group)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.activating + self.optional


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
    local_means="fakesnow (DuckDB) under the real snowflake-connector-python API",
)
DATABRICKS = ServiceSpec(
    name="databricks",
    required=("DATABRICKS_HOST",),
    one_of=(("DATABRICKS_TOKEN",), ("DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET")),
    optional=("DATABRICKS_CLUSTER_ID", "DATABRICKS_WAREHOUSE_ID", "DATABRICKS_RETRY_TIMEOUT"),
    secrets=frozenset({"DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET"}),
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
    local_means="a single-node Kafka broker (KRaft) this project starts on 127.0.0.1",
)
MLFLOW = ServiceSpec(
    name="mlflow",
    required=("MLFLOW_TRACKING_URI",),
    optional=("MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_REGISTERED_MODEL_NAME"),
    local_means="MLflow tracking and model registry on a SQLite file in the run's workdir",
)
SPARK = ServiceSpec(
    name="spark",
    one_of=(("SPARK_REMOTE",), ("SPARK_MASTER",)),
    exclusive=("SPARK_REMOTE", "SPARK_MASTER"),
    local_means="an in-process local[*] Spark with Delta Lake",
)
ALERTS = ServiceSpec(
    name="alerts",
    required=("ALERT_WEBHOOK_URL",),
    secrets=frozenset({"ALERT_WEBHOOK_URL"}),
    local_means="a webhook receiver on 127.0.0.1 standing in for PagerDuty/Slack",
)
SERVICES: tuple[ServiceSpec, ...] = (SNOWFLAKE, DATABRICKS, KAFKA, MLFLOW, SPARK, ALERTS)


@dataclass(frozen=True)
class ServiceConfig:
    """One service's resolved mode and values (secrets wrapped)."""

    spec: ServiceSpec
    mode: Mode
    values: Mapping[str, str | Secret] = field(default_factory=dict)

    @property
    def is_cloud(self) -> bool:
        return self.mode == "cloud"

    def get(self, key: str, default: str | None = None) -> str | None:
        """A non-secret value (secrets must be read with `secret`)."""
        if key in self.spec.secrets:
            raise KeyError(f"{key} is a secret: read it with .secret()")
        value = self.values.get(key)
        return value if isinstance(value, str) else default

    def secret(self, key: str) -> Secret | None:
        value = self.values.get(key)
        return value if isinstance(value, Secret) else None

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"ServiceConfig({self.spec.name}, {self.mode}{', ' if shown else ''}{shown})"


@dataclass(frozen=True)
class Settings:
    """Every service's configuration, resolved once per run."""

    snowflake: ServiceConfig
    databricks: ServiceConfig
    kafka: ServiceConfig
    mlflow: ServiceConfig
    spark: ServiceConfig
    alerts: ServiceConfig
    source: str = "environment"

    def services(self) -> tuple[ServiceConfig, ...]:
        return (self.snowflake, self.databricks, self.kafka, self.mlflow, self.spark, self.alerts)


def resolve_service(spec: ServiceSpec, env: Mapping[str, str]) -> ServiceConfig:
    """Decide local or cloud for one service; raise `ConfigError` naming missing keys if half-set."""
    present = {k: env[k].strip() for k in spec.keys if env.get(k, "").strip()}
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
    values: dict[str, str | Secret] = {k: Secret(v) if k in spec.secrets else v for k, v in present.items()}
    return ServiceConfig(spec, "cloud", values)


def default_env_file() -> Path:
    """`EXPERT_ENV_FILE` if set (tests point it at an empty file), else the repository's `.env`."""
    return Path(os.environ.get("EXPERT_ENV_FILE") or PROJECT_ROOT / ".env")


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Merge `.env` and the process environment (the environment wins) and resolve every service."""
    env_file = env_file or default_env_file()
    merged: dict[str, str] = {}
    if env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    resolved = {spec.name: resolve_service(spec, merged) for spec in SERVICES}
    return Settings(**resolved, source=str(env_file) if env_file.is_file() else "environment")
