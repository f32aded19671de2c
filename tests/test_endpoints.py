"""No hang: every remote endpoint fails within seconds, naming the host and the setting (issue 17.3).

Each endpoint is pointed at a local socket that accepts connections and never answers (the case
client libraries wait on longest) and at a closed port. Most tests shrink the probe budget to keep
the suite fast; `test_snowflake_that_never_answers_fails_within_15_s` keeps the real one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from expert.runtime import endpoints
from expert.runtime.config import ALERTS, DATABRICKS, KAFKA, MLFLOW, SNOWFLAKE, SPARK, load_settings, resolve_service
from expert.runtime.errors import ExpertError

NO_ENV_FILE = Path("/nonexistent/.env")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A 127.0.0.1 port whose server accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in accepted:
        conn.close()
    server.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def short_budget(monkeypatch: pytest.MonkeyPatch) -> float:
    """Probe budgets of one second each, so a silent server costs the test ~1 s."""
    monkeypatch.setattr(endpoints, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setattr(endpoints, "ANSWER_TIMEOUT_S", 1.0)
    return 2.0


def _fails_fast(call, budget: float) -> ExpertError:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    with pytest.raises(ExpertError) as err:
        call()
    assert time.monotonic() - started < budget + 3, f"took {time.monotonic() - started:.1f} s"
    return err.value


def test_http_probe_names_the_host_and_setting_for_a_silent_and_a_closed_server(
    silent_port: int, closed_port: int, short_budget: float
) -> None:
    silent = _fails_fast(
        lambda: endpoints.probe_http(f"http://127.0.0.1:{silent_port}/x", what="the thing", setting="THING_URL"),
        short_budget,
    )
    assert (
        f"could not connect to the thing at 127.0.0.1:{silent_port}: it accepted the connection but did not answer"
        in silent.message
    )
    assert "THING_URL" in silent.fix
    closed = _fails_fast(
        lambda: endpoints.probe_http(f"http://127.0.0.1:{closed_port}", what="the thing", setting="THING_URL"), 1.0
    )
    assert closed.message == f"could not connect to the thing at 127.0.0.1:{closed_port}: Connection refused"


def test_spark_connect_to_a_closed_port_or_a_silent_server_fails_in_seconds(
    silent_port: int, closed_port: int, short_budget: float
) -> None:
    """Today's defect: SPARK_REMOTE to a closed port printed nothing for 5 minutes (Connect's retries)."""
    from expert.runtime.spark import get_spark

    for port, expected in ((closed_port, "Connection refused"), (silent_port, "did not complete a gRPC handshake")):
        config = resolve_service(SPARK, {"SPARK_REMOTE": f"sc://127.0.0.1:{port}/;token=never-printed-token"})
        err = _fails_fast(lambda config=config: get_spark(config=config), short_budget)
        assert expected in err.message and "SPARK_REMOTE" in err.fix
        assert "never-printed-token" not in str(err)


def test_snowflake_that_never_answers_fails_within_15_s(silent_port: int) -> None:
    """Today's defect: ~62 s whatever SNOWFLAKE_LOGIN_TIMEOUT said. The real probe budget applies."""
    from expert.runtime.snowflake import connect_cloud

    config = resolve_service(
        SNOWFLAKE,
        {
            "SNOWFLAKE_ACCOUNT": "acct",
            "SNOWFLAKE_USER": "LEARNER",
            "SNOWFLAKE_PASSWORD": "pw-never-printed",
            "SNOWFLAKE_HOST": "127.0.0.1",
            "SNOWFLAKE_PORT": str(silent_port),
            "SNOWFLAKE_PROTOCOL": "http",
        },
    )
    started = time.monotonic()
    with pytest.raises(ExpertError) as err:
        connect_cloud(config, "EXPERT", "PUBLIC")
    assert time.monotonic() - started < 15
    assert f"could not connect to Snowflake at 127.0.0.1:{silent_port}" in err.value.message
    assert "SNOWFLAKE_HOST" in err.value.fix


def test_databricks_workspace_that_never_answers_fails_fast(silent_port: int, short_budget: float) -> None:
    """Today's defect: the SDK retries for its 300 s default (and DATABRICKS_RETRY_TIMEOUT=0 meant that)."""
    from expert.runtime.databricks import connect_workspace

    config = resolve_service(
        DATABRICKS, {"DATABRICKS_HOST": f"http://127.0.0.1:{silent_port}", "DATABRICKS_TOKEN": "t"}
    )
    err = _fails_fast(lambda: connect_workspace(config), short_budget)
    assert f"127.0.0.1:{silent_port}" in err.message and "DATABRICKS_HOST" in err.fix


def test_kafka_bootstrap_that_refuses_or_never_answers_fails_fast(
    silent_port: int, closed_port: int, short_budget: float
) -> None:
    closed = resolve_service(KAFKA, {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port}"})
    assert "Connection refused" in _fails_fast(lambda: endpoints.probe_kafka(closed), 1.0).message
    silent = resolve_service(KAFKA, {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{silent_port}"})
    err = _fails_fast(lambda: endpoints.probe_kafka(silent), short_budget)
    assert f"127.0.0.1:{silent_port}" in err.message and "KAFKA_BOOTSTRAP_SERVERS" in err.fix


def test_preflight_probes_mlflow_the_webhook_and_the_s3_endpoint(
    silent_port: int, short_budget: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = load_settings(environ={}, env_file=NO_ENV_FILE)
    url = f"http://127.0.0.1:{silent_port}"
    cases = [
        (["spark", "mlflow"], {"mlflow": resolve_service(MLFLOW, {"MLFLOW_TRACKING_URI": url})}, "MLFLOW_TRACKING_URI"),
        (
            ["spark"],
            {"alerts": resolve_service(ALERTS, {"ALERT_WEBHOOK_URL": f"{url}/services/T/B/x"})},
            "ALERT_WEBHOOK_URL",
        ),
    ]
    for needs, services, setting in cases:
        settings = type(local)(**{**{s.spec.name: s for s in local.services()}, **services})
        err = _fails_fast(lambda needs=needs, settings=settings: endpoints.preflight(needs, settings), short_budget)
        assert setting in err.fix and f"127.0.0.1:{silent_port}" in err.message
    monkeypatch.setenv("LAKEHOUSE_ROOT", "s3a://bucket/lake")
    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT", url)
    err = _fails_fast(lambda: endpoints.preflight(["spark"], local), short_budget)
    assert "LAKEHOUSE_S3_ENDPOINT" in err.fix
    assert endpoints.preflight(["snowflake"], local) is None  # local services: nothing to probe
