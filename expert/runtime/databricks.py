"""The Databricks workspace client, for cloud mode only, built to fail fast.

Why: `WorkspaceClient` against an unreachable host retries for ~300 s by default, which a learner
reads as a hang. Here the retry budget and per-request timeout are short (configurable with
`DATABRICKS_RETRY_TIMEOUT`), and `connect_workspace` proves the connection with one cheap call so
a wrong host or token becomes one plain message within seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from expert.runtime.config import ServiceConfig
from expert.runtime.errors import ExpertError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

DEFAULT_RETRY_TIMEOUT_S = 10
HTTP_TIMEOUT_S = 10


def workspace_client(config: ServiceConfig) -> WorkspaceClient:
    """A client with short retry and HTTP timeouts (no network call is made here)."""
    if not config.is_cloud:
        raise ExpertError(
            "no Databricks workspace is configured",
            "set DATABRICKS_HOST and DATABRICKS_TOKEN (or DATABRICKS_CLIENT_ID + DATABRICKS_CLIENT_SECRET) in .env",
        )
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    auth: dict[str, str] = {}
    if (token := config.secret("DATABRICKS_TOKEN")) is not None:
        auth["token"] = token.reveal()
    else:
        secret = config.secret("DATABRICKS_CLIENT_SECRET")
        auth["client_id"] = config.get("DATABRICKS_CLIENT_ID") or ""
        auth["client_secret"] = secret.reveal() if secret else ""
    retry = int(config.get("DATABRICKS_RETRY_TIMEOUT") or DEFAULT_RETRY_TIMEOUT_S)
    sdk_config = Config(
        host=config.get("DATABRICKS_HOST"),
        retry_timeout_seconds=retry,
        http_timeout_seconds=min(HTTP_TIMEOUT_S, retry),
        **auth,
    )
    return WorkspaceClient(config=sdk_config)


def connect_workspace(config: ServiceConfig) -> WorkspaceClient:
    """A client whose connection and credentials were just proven by `current_user.me()`."""
    client = workspace_client(config)
    host = config.get("DATABRICKS_HOST")
    try:
        client.current_user.me()
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpertError(
            f"could not reach the Databricks workspace at {host}: {reason}",
            "check DATABRICKS_HOST (https://<workspace>.cloud.databricks.com), the token and your "
            "network; or remove the DATABRICKS_* keys from .env to run locally",
        ) from None
    return client
