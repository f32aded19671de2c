"""The platforms' own credential files, for a service with no key in `.env` or the environment.

Why: a learner set up the standard way (a `~/.databrickscfg` profile from `databricks auth login`,
a Snowflake `connections.toml` from `snow connection add`) should not have to copy credentials into
`.env`. This module finds the entry each platform's own tools would use, without a network call and
without reading a secret into this project: the Databricks SDK's `Config` and the Snowflake
connector later authenticate from the same file themselves. `expert.runtime.config` calls it.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from expert.runtime.config import DATABRICKS, SNOWFLAKE, ServiceConfig, check_number, endpoint_of
from expert.runtime.errors import ConfigError
from expert.runtime.redact import redact_url, register_secret


def _home(env: Mapping[str, str]) -> Path | None:
    home = env.get("HOME")
    return Path(home) if home else None


def databricks_profile(env: Mapping[str, str]) -> ServiceConfig | None:
    """The Databricks profile the SDK would use (`DATABRICKS_CONFIG_PROFILE`, the file's default
    profile, or `DEFAULT`), when its config file exists and the profile has a host."""
    home = _home(env)
    named = env.get("DATABRICKS_CONFIG_FILE", "").strip()
    path = Path(named).expanduser() if named else (home / ".databrickscfg" if home else None)
    requested = env.get("DATABRICKS_CONFIG_PROFILE", "").strip() or None
    if path is None or not path.is_file():
        if requested:
            raise ConfigError(
                f"DATABRICKS_CONFIG_PROFILE={requested} is set, but there is no Databricks config file at {path}",
                "run `databricks auth login` (or `databricks configure`) to create the profile, or "
                "set DATABRICKS_CONFIG_FILE to your config file",
            )
        return None
    from databricks.sdk.config import Config

    parser = configparser.ConfigParser()
    try:
        parser.read(path)
        profile, _ = Config._resolve_profile(requested, parser)
    except (configparser.Error, ValueError) as exc:
        raise ConfigError(f"cannot read the Databricks config file {path}: {exc}", "fix the file's syntax") from None
    # A profile's own keys, without [DEFAULT]'s merged in (as the SDK reads them).
    sections = {name: dict(keys) for name, keys in parser._sections.items() if name != "__settings__"}  # type: ignore[attr-defined]
    if parser.defaults():
        sections["DEFAULT"] = dict(parser.defaults())
    if profile is None or profile not in sections:
        if requested:
            raise ConfigError(
                f"{path} has no profile [{requested}] (it has: {', '.join(sorted(sections)) or 'none'})",
                "set DATABRICKS_CONFIG_PROFILE to one of those, or create it with `databricks auth login --profile NAME`",
            )
        return None
    entry = sections[profile]
    host = entry.get("host", "").strip()
    if not host:
        return None
    for key, value in entry.items():
        if any(word in key for word in ("token", "secret", "password")):
            register_secret(value)
    values: dict[str, str | SecretStr] = {}
    if retry := env.get("DATABRICKS_RETRY_TIMEOUT", "").strip():
        low, high = DATABRICKS.numbers["DATABRICKS_RETRY_TIMEOUT"]
        check_number("DATABRICKS_RETRY_TIMEOUT", retry, low, high)
        values["DATABRICKS_RETRY_TIMEOUT"] = retry
    for key in ("DATABRICKS_CLUSTER_ID", "DATABRICKS_WAREHOUSE_ID"):
        if env.get(key, "").strip():
            values[key] = env[key].strip()
    return ServiceConfig(
        DATABRICKS,
        "cloud",
        values,
        source=f"Databricks config profile [{profile}] ({path})",
        profile=profile,
        profile_file=str(path),
        endpoint=redact_url(host if "://" in host else f"https://{host}"),
    )


def snowflake_connections_file(env: Mapping[str, str]) -> Path | None:
    """Where the connector looks for `connections.toml`: `SNOWFLAKE_HOME` (default `~/.snowflake`)
    when that directory exists, else the platform's config directory (`~/.config/snowflake` on
    Linux), as `snowflake.connector.sf_dirs` resolves it."""
    home = _home(env)
    snowflake_home = env.get("SNOWFLAKE_HOME") or (str(home / ".snowflake") if home else "")
    if snowflake_home and Path(snowflake_home).expanduser().is_dir():
        return Path(snowflake_home).expanduser() / "connections.toml"
    config_home = env.get("XDG_CONFIG_HOME") or (str(home / ".config") if home else "")
    return Path(config_home) / "snowflake" / "connections.toml" if config_home else None


SNOWFLAKE_CONNECTION_KEYS = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "host": "SNOWFLAKE_HOST",
    "port": "SNOWFLAKE_PORT",
    "protocol": "SNOWFLAKE_PROTOCOL",
    "role": "SNOWFLAKE_ROLE",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
}
"""Non-secret connection fields shown (and used in messages) as if they came from `.env`."""


def read_snowflake_connections(path: Path) -> tuple[dict[str, Any], str]:
    """Every connection in `path` and the default connection's name, read with the connector's own
    `ConfigManager` (which refuses a file others can read), so what we see is what it uses."""
    from snowflake.connector.config_manager import ConfigManager, ConfigSlice, ConfigSliceOptions
    from snowflake.connector.errors import Error as SnowflakeError

    manager = ConfigManager(
        name="connections_file",
        file_path=path.with_name("config.toml"),
        _slices=[ConfigSlice(path, ConfigSliceOptions(check_permissions=True), "connections")],
    )
    manager.add_option(name="connections", default={})
    manager.add_option(name="default_connection_name", default="default")
    try:
        connections: dict[str, Any] = dict(manager["connections"])  # type: ignore[call-overload]
        return connections, str(manager["default_connection_name"])
    except (SnowflakeError, OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read {path}: {str(exc).splitlines()[0]}",
            f"fix the file (TOML), and restrict it to your user: chmod 0600 {path}",
        ) from None


def snowflake_connection(env: Mapping[str, str]) -> ServiceConfig | None:
    """The `connections.toml` connection the connector would use, read with its own `ConfigManager`."""
    path = snowflake_connections_file(env)
    requested = env.get("SNOWFLAKE_DEFAULT_CONNECTION_NAME", "").strip()
    if path is None or not path.is_file():
        if requested:
            raise ConfigError(
                f"SNOWFLAKE_DEFAULT_CONNECTION_NAME={requested} is set, but there is no {path}",
                "create the connection (`snow connection add`), or set SNOWFLAKE_HOME to the directory of "
                "your connections.toml",
            )
        return None
    connections, default_name = read_snowflake_connections(path)
    name = requested or default_name
    if name not in connections:
        if requested:
            raise ConfigError(
                f"{path} has no connection [{name}] (it has: {', '.join(sorted(connections)) or 'none'})",
                "set SNOWFLAKE_DEFAULT_CONNECTION_NAME to one of those",
            )
        return None
    entry = {str(k): v for k, v in dict(connections[name]).items()}
    for key, value in entry.items():
        if any(word in key.lower() for word in ("password", "token", "secret", "passcode", "pwd", "private_key")):
            register_secret(str(value))
    values: dict[str, str | SecretStr] = {
        ours: str(entry[theirs]) for theirs, ours in SNOWFLAKE_CONNECTION_KEYS.items() if entry.get(theirs)
    }
    for key in (
        "SNOWFLAKE_DATABASE",
        "SNOWFLAKE_SCHEMA",
        "SNOWFLAKE_LOGIN_TIMEOUT",
        "SNOWFLAKE_ROLE",
        "SNOWFLAKE_WAREHOUSE",
    ):
        if env.get(key, "").strip():
            values[key] = env[key].strip()
    for key, (low, high) in SNOWFLAKE.numbers.items():
        if isinstance(values.get(key), str):
            check_number(key, str(values[key]), low, high)
    shown = {k: str(v) for k, v in values.items()}
    return ServiceConfig(
        SNOWFLAKE,
        "cloud",
        values,
        source=f"Snowflake connections.toml [{name}] ({path})",
        profile=name,
        profile_file=str(path),
        endpoint=endpoint_of(SNOWFLAKE, shown),
    )
