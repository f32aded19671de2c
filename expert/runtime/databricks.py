"""The Databricks workspace client, for cloud mode only, built to fail fast.

Why: `WorkspaceClient` against an unreachable host retries for ~300 s by default, which a learner
reads as a hang. Here the host is probed first (`expert.runtime.endpoints`), the retry budget and
per-request timeout are short (`DATABRICKS_RETRY_TIMEOUT`, a whole number of seconds, checked when
the settings are read: 0 would mean the SDK's 300 s default), and `connect_workspace` proves the
connection with one cheap call, so a wrong host or token becomes one plain message within seconds.

Credentials come from `.env` (a token, or an OAuth client id and secret), or, when `.env` has no
Databricks key, from the profile the SDK's unified authentication finds (`~/.databrickscfg`,
`DATABRICKS_CONFIG_PROFILE`): the SDK's `Config` then resolves PAT, OAuth M2M or U2M (the token
cache `databricks auth login` leaves) itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from expert.runtime.config import ServiceConfig
from expert.runtime.errors import ExpertError
from expert.runtime.redact import scrub

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

DEFAULT_RETRY_TIMEOUT_S = 10
HTTP_TIMEOUT_S = 10


def workspace_client(config: ServiceConfig) -> WorkspaceClient:
    """A client with short retry and HTTP timeouts (the SDK may ask the host for its metadata)."""
    if not config.is_cloud:
        raise ExpertError(
            "no Databricks workspace is configured",
            "set DATABRICKS_HOST and DATABRICKS_TOKEN (or DATABRICKS_CLIENT_ID + DATABRICKS_CLIENT_SECRET) in .env, "
            "or create a profile with `databricks auth login`",
        )
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    retry = config.number("DATABRICKS_RETRY_TIMEOUT", DEFAULT_RETRY_TIMEOUT_S)
    timeouts = {"retry_timeout_seconds": retry, "http_timeout_seconds": min(HTTP_TIMEOUT_S, retry)}
    try:
        if config.profile:
            sdk_config = Config(profile=config.profile, config_file=config.profile_file, **timeouts)
        else:
            auth: dict[str, str] = {}
            if (token := config.secret("DATABRICKS_TOKEN")) is not None:
                auth["token"] = token.get_secret_value()
            else:
                secret = config.secret("DATABRICKS_CLIENT_SECRET")
                auth["client_id"] = config.get("DATABRICKS_CLIENT_ID") or ""
                auth["client_secret"] = secret.get_secret_value() if secret else ""
            sdk_config = Config(host=config.get("DATABRICKS_HOST"), **timeouts, **auth)
    except ValueError as exc:
        raise ExpertError(
            f"the Databricks SDK cannot authenticate to {config.host} (settings from {config.source}): "
            f"{scrub(str(exc).splitlines()[0])}",
            "check the token or OAuth client in .env, or run `databricks auth login` for the profile",
        ) from None
    return WorkspaceClient(config=sdk_config)


def connect_workspace(config: ServiceConfig) -> WorkspaceClient:
    """A client whose connection and credentials were just proven by `current_user.me()`."""
    from expert.runtime.endpoints import probe_databricks

    probe_databricks(config)
    client = workspace_client(config)
    try:
        client.current_user.me()
    except Exception as exc:
        reason = scrub(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        raise ExpertError(
            f"could not reach the Databricks workspace at {config.host}: {reason}",
            "check DATABRICKS_HOST (https://<workspace>.cloud.databricks.com), the token and your "
            "network; or remove the DATABRICKS_* keys from .env to run locally",
        ) from None
    return client
