"""Prometheus and Alertmanager on 127.0.0.1, started and stopped by a pattern: the real monitoring stack.

Why: an alert rule is only proven by the engine that will evaluate it in production. These are the
Debian packages' binaries (`make tools` installs `prometheus` and `prometheus-alertmanager`), each
bound to 127.0.0.1 on a free port, with its data in the run's workdir, stopped when the block ends
(also on failure) and, on Linux, when the Python process dies. A binary that is missing, a port
that is taken or a server that exits while starting is an `ExpertError` naming the binary, the port
or the log, and the fix.

Also here: `ExpositionServer`, a scrape target serving a given exposition text (a pattern replays
what its registry exposed at each simulated evaluation), and `scaled_rules`, a copy of a rule file
with every duration divided by a factor, so a scenario of simulated minutes runs in seconds.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from expert.runtime.daemon import LOOPBACK, free_port, log_tail, port_free, terminate
from expert.runtime.errors import ExpertError

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
"""Debian installs Alertmanager as `prometheus-alertmanager`; upstream releases call it `alertmanager`."""
INSTALL_FIX = "run `make tools` (Debian/Ubuntu: apt-get install prometheus prometheus-alertmanager)"
START_TIMEOUT_S = 30.0
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def find_binary(names: Sequence[str]) -> str | None:
    """The first of `names` on PATH, or None."""
    return next((path for path in map(shutil.which, names) if path), None)


def stack_installed() -> bool:
    """Whether both Prometheus and Alertmanager are installed."""
    return find_binary(PROMETHEUS_BINARIES) is not None and find_binary(ALERTMANAGER_BINARIES) is not None


def _require(names: Sequence[str], what: str) -> str:
    binary = find_binary(names)
    if binary is None:
        raise ExpertError(f"{what} is not installed: no {' or '.join(repr(n) for n in names)} on PATH", INSTALL_FIX)
    return binary


def _pick_port(port: int | None, what: str) -> int:
    if port is None:
        return free_port()
    if not port_free(port):
        raise ExpertError(
            f"{what} cannot listen on {LOOPBACK}:{port}: the port is already in use",
            f"stop what listens on {LOOPBACK}:{port}, or let the pattern pick a free port",
        )
    return port


def _dies_with_parent(command: list[str]) -> list[str]:
    """`command` under util-linux `setpriv --pdeathsig TERM` where available (Linux): the server gets
    SIGTERM if this process dies without stopping it, so no server is left orphaned."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


@dataclass
class Server:
    """A started server: its base URL, process and log."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def target(self) -> str:
        """`host:port`, as another server's configuration names it."""
        return f"{LOOPBACK}:{self.port}"

    def get(self, path: str, **params: Any) -> Any:
        """GET a JSON API path and return its `data`."""
        response = requests.get(f"{self.url}{path}", params=params, timeout=5)
        response.raise_for_status()
        return response.json()["data"]


@contextlib.contextmanager
def _serve(name: str, command: list[str], port: int, log: Path) -> Iterator[Server]:
    """Start `command`, wait until `/-/ready` answers, yield it, and stop it whatever happens."""
    with log.open("wb") as sink:
        process = subprocess.Popen(_dies_with_parent(command), stdout=sink, stderr=subprocess.STDOUT)
    server = Server(name, f"http://{LOOPBACK}:{port}", port, process, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        terminate(process.pid, timeout=10, child=process)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ExpertError(
                f"{server.name} exited while starting (code {server.process.returncode}) on {LOOPBACK}:{server.port}:\n"
                f"{log_tail(server.log)}",
                f"read {server.log}",
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise ExpertError(
        f"{server.name} did not become ready on {LOOPBACK}:{server.port} within {START_TIMEOUT_S:.0f} s",
        f"read {server.log}",
    )


@contextlib.contextmanager
def alertmanager(
    workdir: Path, webhook_url: str, *, port: int | None = None, group_interval: str = "1s"
) -> Iterator[Server]:
    """Alertmanager routing every alert to `webhook_url`, resolved ones too, grouped by alert name.

    `group_wait` is 0 and `group_interval` short, so a scenario of seconds sees every change.
    Clustering is off (it would listen on 0.0.0.0:9094).
    """
    binary = _require(ALERTMANAGER_BINARIES, "Alertmanager")
    port = _pick_port(port, "Alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "route": {
            "receiver": "lakehouse-oncall",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": group_interval,
            "repeat_interval": "4h",
        },
        "receivers": [{"name": "lakehouse-oncall", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [
        binary,
        f"--config.file={config_file}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    with _serve("Alertmanager", command, port, workdir / "alertmanager.log") as server:
        yield server


@contextlib.contextmanager
def prometheus(
    workdir: Path,
    *,
    rule_files: Sequence[Path],
    scrape_target: str,
    alertmanager_target: str,
    scrape_interval: str = "250ms",
    evaluation_interval: str = "1s",
    port: int | None = None,
) -> Iterator[Server]:
    """Prometheus scraping one target and alerting to one Alertmanager (both `host:port`), evaluating `rule_files`."""
    binary = _require(PROMETHEUS_BINARIES, "Prometheus")
    port = _pick_port(port, "Prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(path) for path in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]},
        "scrape_configs": [
            {
                "job_name": "lakehouse",
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": [scrape_target]}],
            }
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--rules.alert.resend-delay={evaluation_interval}",
        "--log.level=warn",
    ]
    with _serve("Prometheus", command, port, workdir / "prometheus.log") as server:
        yield server


def wait_for(condition: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll `condition()` until it is true or `timeout` seconds pass; whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if condition():
                return True
        time.sleep(interval)
    return False


def target_up(server: Server) -> bool:
    """Whether Prometheus' last scrape of its target succeeded (`up == 1`)."""
    result = server.get("/api/v1/query", query="up")
    return bool(result["result"]) and all(float(r["value"][1]) == 1 for r in result["result"])


@dataclass
class ExpositionServer:
    """A scrape target on 127.0.0.1 serving whatever exposition text it is given (`/metrics`)."""

    text: bytes = b""
    port: int = 0
    scrapes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def show(self, text: bytes) -> None:
        """Serve `text` from the next scrape on."""
        with self._lock:
            self.text = text

    @contextlib.contextmanager
    def running(self) -> Iterator[ExpositionServer]:
        exposition = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with exposition._lock:
                    body = exposition.text
                    exposition.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", EXPOSITION_CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Silence the default stderr access log."""

        server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port = int(server.server_port)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """A Prometheus duration (`5m`, `30s`, `1h`) in seconds."""
    match = DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def seconds_to_duration(seconds: float) -> str:
    """A Prometheus duration for `seconds`, in whole milliseconds (`1500ms`, `2s`)."""
    millis = max(1, round(seconds * 1000))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def scaled_rules(source: Path, target: Path, factor: float) -> Path:
    """Copy a rule file with every group `interval` and rule `for` divided by `factor` (expressions unchanged)."""
    document = yaml.safe_load(source.read_text())
    for group in document["groups"]:
        if "interval" in group:
            group["interval"] = seconds_to_duration(parse_duration(group["interval"]) / factor)
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = seconds_to_duration(parse_duration(rule["for"]) / factor)
    header = (
        f"# {source.name} with every duration divided by {factor:g} (a simulated scenario on a compressed clock).\n"
    )
    target.write_text(header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return target
