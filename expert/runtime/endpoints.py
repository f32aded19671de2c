"""Reachability probes: a remote endpoint answers within seconds, or the run stops naming it.

Why: the client libraries wait a long time by default, each in its own way: Spark Connect retries
an unreachable server for minutes, the Databricks SDK for 300 s, the Snowflake connector waits
60 s for a server that accepted the connection but never answers (whatever the login timeout
says), an HTTP client waits forever. A learner reads each as a hang. Before a run uses a
configured endpoint, one cheap probe per endpoint proves it answers (any HTTP status, a gRPC
handshake, broker metadata) within `CONNECT_TIMEOUT_S` + `ANSWER_TIMEOUT_S`; if not, the run
stops with the host and the setting to check, and no credential (`redact_url`).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from expert.runtime.config import ServiceConfig, Settings
from expert.runtime.errors import ExpertError
from expert.runtime.redact import redact_url, scrub

CONNECT_TIMEOUT_S = 5.0
ANSWER_TIMEOUT_S = 8.0
"""Together under 15 s: the longest a learner waits to hear that an endpoint is wrong."""


def _unreachable(what: str, where: str, why: str, setting: str) -> ExpertError:
    return ExpertError(
        f"could not connect to {what} at {where}: {why}",
        f"check {setting} (host, port, scheme), that the server is running and that your network "
        "reaches it; or remove the setting to run that part locally",
    )


def probe_http(url: str, *, what: str, setting: str) -> None:
    """Any HTTP answer (even 404) from the URL's origin proves the server is there.

    Only the origin (`scheme://host:port/`) is asked, with `HEAD`: never a path that carries a
    token, never a request that could trigger anything.
    """
    import requests

    origin = redact_url(url)
    where = origin.split("://", 1)[-1]
    try:
        requests.head(origin + "/", timeout=(CONNECT_TIMEOUT_S, ANSWER_TIMEOUT_S), allow_redirects=False)
    except requests.exceptions.ConnectTimeout:
        raise _unreachable(what, where, f"no connection within {CONNECT_TIMEOUT_S:.0f} s", setting) from None
    except requests.exceptions.ReadTimeout:
        raise _unreachable(
            what, where, f"it accepted the connection but did not answer within {ANSWER_TIMEOUT_S:.0f} s", setting
        ) from None
    except requests.exceptions.SSLError:
        raise _unreachable(what, where, "the TLS handshake failed (is the scheme right?)", setting) from None
    except requests.exceptions.RequestException as exc:
        raise _unreachable(what, where, _reason(exc), setting) from None


def probe_tcp(host: str, port: int, *, what: str, setting: str) -> None:
    """The host accepts a TCP connection on the port (for protocols an HTTP probe cannot speak)."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return
    except TimeoutError:
        raise _unreachable(what, f"{host}:{port}", f"no connection within {CONNECT_TIMEOUT_S:.0f} s", setting) from None
    except OSError as exc:
        raise _unreachable(what, f"{host}:{port}", str(exc.strerror or exc), setting) from None


def probe_spark_connect(url: str) -> None:
    """A gRPC handshake with the Spark Connect server (pyspark's own URL parser builds the channel).

    A closed port or a server that never answers fails here within seconds, instead of in Spark
    Connect's retry loop (about 10 minutes of back-off by default).
    """
    import grpc
    from pyspark.sql.connect.client.core import DefaultChannelBuilder

    where = redact_url(url)
    try:
        builder = DefaultChannelBuilder(url)
        host, _, port = builder.endpoint.rpartition(":")
        where = builder.endpoint
        channel = builder.toChannel()
    except Exception as exc:
        raise ExpertError(
            f"SPARK_REMOTE is not a Spark Connect URL ({where}): {_reason(exc)}",
            "write it as sc://HOST:PORT (add /;token=… for a server that needs one)",
        ) from None
    try:
        probe_tcp(host.strip("[]"), int(port), what="the Spark Connect server", setting="SPARK_REMOTE")
        grpc.channel_ready_future(channel).result(timeout=ANSWER_TIMEOUT_S)
    except grpc.FutureTimeoutError:
        raise _unreachable(
            "the Spark Connect server",
            where,
            f"it accepted the connection but did not complete a gRPC handshake within {ANSWER_TIMEOUT_S:.0f} s",
            "SPARK_REMOTE",
        ) from None
    finally:
        channel.close()


def probe_kafka(config: ServiceConfig) -> None:
    """The configured brokers answer a metadata request (with the configured security settings)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from expert.runtime.kafka import KafkaEndpoint

    servers = config.get("KAFKA_BOOTSTRAP_SERVERS") or ""
    refusals = []
    for server in servers.split(","):
        parts = urlsplit(f"//{server.strip()}")
        try:
            probe_tcp(
                parts.hostname or "", parts.port or 9092, what="the Kafka broker", setting="KAFKA_BOOTSTRAP_SERVERS"
            )
            break
        except ExpertError as exc:
            refusals.append(exc)
    else:
        raise refusals[0]  # no broker accepts a connection: say so now, not after the metadata timeout
    try:
        AdminClient(KafkaEndpoint(servers, config).client_config()).list_topics(timeout=ANSWER_TIMEOUT_S)
    except KafkaException as exc:
        raise _unreachable(
            "the Kafka cluster",
            servers,
            f"no answer to a metadata request ({_reason(exc)})",
            "KAFKA_BOOTSTRAP_SERVERS and KAFKA_SASL_*",
        ) from None


def probe_spark(config: ServiceConfig) -> None:
    if (remote := config.secret("SPARK_REMOTE")) is not None:
        probe_spark_connect(remote.get_secret_value())
        return
    master = config.get("SPARK_MASTER") or ""
    if master.startswith("spark://"):
        for address in master.removeprefix("spark://").split(","):
            parts = urlsplit(f"//{address}")
            probe_tcp(parts.hostname or "", parts.port or 7077, what="the Spark master", setting="SPARK_MASTER")


def probe_mlflow(config: ServiceConfig, settings: Settings) -> None:
    uri = config.get("MLFLOW_TRACKING_URI") or ""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        probe_http(uri, what="the MLflow tracking server", setting="MLFLOW_TRACKING_URI")
    elif uri.startswith("databricks") and settings.databricks.is_cloud:
        probe_databricks(settings.databricks)


def probe_databricks(config: ServiceConfig) -> None:
    setting = (
        "DATABRICKS_HOST" if not config.profile else f"the host of profile [{config.profile}] in {config.profile_file}"
    )
    probe_http(config.endpoint, what="the Databricks workspace", setting=setting)


def probe_snowflake(config: ServiceConfig) -> None:
    setting = "SNOWFLAKE_ACCOUNT / SNOWFLAKE_HOST / SNOWFLAKE_PORT / SNOWFLAKE_PROTOCOL"
    if config.profile:
        setting = f"the account or host of connection [{config.profile}] in {config.profile_file}"
    probe_http(config.endpoint, what="Snowflake", setting=setting)


def probe_storage() -> None:
    from expert.runtime.storage import S3_ENDPOINT_KEY, storage_settings

    storage = storage_settings()
    if storage.root and storage.s3_endpoint:
        probe_http(storage.s3_endpoint, what="the S3 endpoint", setting=S3_ENDPOINT_KEY)


def preflight(needs: Iterable[str], settings: Settings) -> None:
    """Probe every configured endpoint a pattern with these needs will use; stop at the first silent one.

    Spark patterns are the Databricks side: with `spark` come the Databricks workspace, the
    lakehouse's S3 endpoint and the alert webhook, when configured.
    """
    needs = set(needs)
    if "spark" in needs:
        if settings.spark.is_cloud:
            probe_spark(settings.spark)
        probe_storage()
        if settings.databricks.is_cloud:
            probe_databricks(settings.databricks)
        if settings.alerts.is_cloud and (hook := settings.alerts.secret("ALERT_WEBHOOK_URL")) is not None:
            probe_http(hook.get_secret_value(), what="the alert webhook", setting="ALERT_WEBHOOK_URL")
    if "snowflake" in needs and settings.snowflake.is_cloud:
        probe_snowflake(settings.snowflake)
    if "kafka" in needs and settings.kafka.is_cloud:
        probe_kafka(settings.kafka)
    if "mlflow" in needs and settings.mlflow.is_cloud:
        probe_mlflow(settings.mlflow, settings)


def _reason(exc: BaseException) -> str:
    """The operating system's reason if there is one (`Connection refused`), else the exception's
    first line; without credentials either way."""
    text = str(exc).strip()
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    return scrub(text.splitlines()[0]) if text else type(exc).__name__
