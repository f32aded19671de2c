"""Spark beyond one process: a Spark Connect server and a standalone cluster, both on loopback.

Why: a pattern that only ever ran in `local[*]` has not proven it will run where an employer runs
it. Two things differ there. Over Spark Connect (the protocol Databricks Connect and serverless
compute speak) the client holds no JVM: no `sparkContext`, no RDDs, and every Python function
(UDF, `foreachBatch`) is pickled and run by the server. On a cluster the executors are other JVMs
with their own Python workers and classpaths. This module starts both on this machine so the same
scripts can be pointed at them with `SPARK_REMOTE=sc://127.0.0.1:15002` or
`SPARK_MASTER=spark://127.0.0.1:7077`.

The daemons are the ones a Spark distribution's `sbin/start-connect-server.sh`,
`start-master.sh` and `start-worker.sh` start. pip's pyspark ships `sbin/spark-daemon.sh` (the
script those wrappers call) but not the wrappers, so this module calls spark-daemon.sh exactly as
they do. Every port binds 127.0.0.1 (`SPARK_LOCAL_IP`, `spark.connect.grpc.binding.address`);
pid files and logs live in `.work/_shared/spark-cluster/`. Start and stop are serialized with a
file lock, and stop only signals JVMs that carry this work root's marker, never a stranger. The
daemons are launched with every inherited file descriptor closed (subprocess's default): a
long-lived JVM that inherited, say, the descriptor of a `flock` its starter held would hold that
lock until it stopped.

Delta over Connect: Delta SQL (`MERGE INTO`, `OPTIMIZE`, `DESCRIBE HISTORY`, `RESTORE`) and the
DataFrame reader/writer work, because the server runs the Delta SQL extension and catalog. The
Python `DeltaTable` API over Connect needs Delta's Connect server plugin
(`io.delta:delta-connect-server_*`), which is not published for Delta 4.4.0 / Spark 4.2, so
`DeltaTable.forPath(...)` on a Connect session fails with `NO_HANDLER_FOR_EXTENSION`; the shared
lakehouse code uses Delta SQL instead (`expert.lakehouse.delta_ops`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from expert.runtime.daemon import (
    LOOPBACK,
    STOP_TIMEOUT_S,
    file_lock,
    free_port,
    log_tail,
    port_accepts,
    port_free,
    process_command,
    terminate,
)
from expert.runtime.errors import ExpertError
from expert.runtime.workdir import shared_dir

CONNECT_PORT = 15002
MASTER_PORT = 7077
MASTER_UI_PORT = 8080
WORKER_UI_PORT = 8081
DEFAULT_START_TIMEOUT_S = 120.0
IDENT = "expert"
"""`SPARK_IDENT_STRING`: names the pid and log files spark-daemon.sh writes."""
MARKER = "-Dexpert.spark.daemons="
"""A JVM system property naming the directory that owns a daemon, so status/stop recognise it."""
SCRUBBED_ENV = (
    "SPARK_MASTER",
    "SPARK_REMOTE",
    "SPARK_CONNECT_MODE_ENABLED",
    "SPARK_LOCAL_REMOTE",
    "PYSPARK_SUBMIT_ARGS",
)
"""Removed from the daemons' environment: spark-daemon.sh rsyncs from `$SPARK_MASTER` when it is
set, and a `SPARK_REMOTE` would turn spark-submit into a Connect client."""


@dataclass(frozen=True)
class DaemonKind:
    """One kind of Spark daemon: its main class, how spark-daemon.sh launches it, when it is ready."""

    role: str
    main_class: str
    launch: str
    ready_line: str


CONNECT_SERVER = DaemonKind(
    "connect-server",
    "org.apache.spark.sql.connect.service.SparkConnectServer",
    "submit",
    "Spark Connect server started at",
)
MASTER = DaemonKind("master", "org.apache.spark.deploy.master.Master", "start", "I have been elected leader")
WORKER = DaemonKind("worker", "org.apache.spark.deploy.worker.Worker", "start", "Successfully registered with master")


@dataclass(frozen=True)
class DaemonState:
    """What `<role>.json` records about a running daemon."""

    role: str
    pid: int
    port: int
    url: str
    started_at: float
    log_file: str
    web_ui: str = ""
    master: str = ""
    start_seconds: float = 0.0


@dataclass(frozen=True)
class DaemonStatus:
    """The truth about one daemon: running or not, and why."""

    role: str
    running: bool
    detail: str
    state: DaemonState | None = None


@dataclass(frozen=True)
class DaemonStart:
    """A started (or already running) daemon and how long the start took."""

    state: DaemonState
    already_running: bool


@dataclass(frozen=True)
class ClusterStart:
    """The standalone cluster: its master and its one worker."""

    master: DaemonStart
    worker: DaemonStart

    @property
    def already_running(self) -> bool:
        return self.master.already_running and self.worker.already_running

    @property
    def url(self) -> str:
        return self.master.state.url


# --------------------------------------------------------------------------------------------
# Where things live
# --------------------------------------------------------------------------------------------


def spark_home() -> Path:
    """The pip-installed pyspark directory: it holds `bin/`, `sbin/` and `jars/` like a distribution."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def daemons_dir() -> Path:
    return shared_dir("spark-cluster")


def _pid_file(kind: DaemonKind) -> Path:
    return daemons_dir() / "pids" / f"spark-{IDENT}-{kind.main_class}-1.pid"


def _state_file(kind: DaemonKind) -> Path:
    return daemons_dir() / f"{kind.role}.json"


def _read_state(kind: DaemonKind) -> DaemonState | None:
    try:
        return DaemonState(**json.loads(_state_file(kind).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(kind: DaemonKind, state: DaemonState) -> None:
    _state_file(kind).write_text(json.dumps(asdict(state), indent=2) + "\n")


def _lock() -> contextlib.AbstractContextManager[None]:
    """One start or stop at a time, across processes (a test session, a learner's terminal)."""
    return file_lock(daemons_dir())


# --------------------------------------------------------------------------------------------
# Processes and ports
# --------------------------------------------------------------------------------------------


def _is_ours(pid: int, kind: DaemonKind) -> bool:
    command = process_command(pid)
    return command is not None and kind.main_class in command and f"{MARKER}{daemons_dir()}" in command


def _require_free(port: int, what: str, option: str) -> None:
    if not port_free(port):
        raise ExpertError(
            f"port {port} on {LOOPBACK} is already in use, so the {what} cannot listen on it",
            f"stop whatever uses it (`ss -ltnp` shows it) or choose another {option}",
        )


def _ui_port(preferred: int) -> int:
    """The conventional web UI port when free, else any free one (the UI is a convenience)."""
    return preferred if port_free(preferred) else free_port()


# --------------------------------------------------------------------------------------------
# spark-daemon.sh
# --------------------------------------------------------------------------------------------


def daemon_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment spark-daemon.sh and the JVMs it starts see: loopback, our dirs, this Python."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_PID_DIR=str(daemons_dir() / "pids"),
        SPARK_LOG_DIR=str(daemons_dir() / "logs"),
        SPARK_IDENT_STRING=IDENT,
        SPARK_LOG_MAX_FILES="3",
        # Every RPC endpoint and web UI of the master, the worker and its executors binds here.
        SPARK_LOCAL_IP=LOOPBACK,
        # Python workers (UDFs, foreachBatch on a Connect server) run this project's interpreter,
        # so they can import `expert` and the pinned libraries.
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    env.update(extra or {})
    return env


def _spark_daemon(action: str, kind: DaemonKind, args: Iterable[str], env: Mapping[str, str]) -> str:
    """Run `sbin/spark-daemon.sh ACTION CLASS 1 ARGS…` and return what it printed."""
    script = spark_home() / "sbin" / "spark-daemon.sh"
    if not script.is_file():
        raise ExpertError(f"{script} is missing from the pyspark install", "reinstall with `make setup`")
    command = ["bash", str(script), action, kind.main_class, "1", *args]
    try:
        done = subprocess.run(
            command,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
    except subprocess.TimeoutExpired:
        raise ExpertError(f"spark-daemon.sh {action} {kind.role} did not return in 120 s", "retry; see `ps`") from None
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise ExpertError(f"spark-daemon.sh {action} {kind.role} failed: {output[-500:]}", "read the message above")
    return output


def _read_pid(kind: DaemonKind) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(_pid_file(kind).read_text().strip())
    return None


def _wait_ready(kind: DaemonKind, pid: int, port: int, log: Path, timeout: float) -> None:
    """Ready means: the JVM is alive, its log says it is serving, and its port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_command(pid) is None:
            tail = log_tail(log)
            if "Address already in use" in tail or "BindException" in tail or "Failed to bind" in tail:
                raise ExpertError(
                    f"the Spark {kind.role} could not bind {LOOPBACK}:{port}: the port is in use",
                    "stop whatever uses it (`ss -ltnp` shows it) or choose another port",
                )
            raise ExpertError(
                f"the Spark {kind.role} exited during start-up. Log tail:\n{tail}", f"read the full log: {log}"
            )
        with contextlib.suppress(OSError):
            if kind.ready_line in log.read_text(errors="replace") and port_accepts(port):
                return
        time.sleep(0.2)
    raise ExpertError(
        f"the Spark {kind.role} was not ready within {timeout:.0f} s. Log tail:\n{log_tail(log)}",
        f"a busy machine needs longer: retry with a larger --timeout; the full log is {log}",
    )


def _start_daemon(
    kind: DaemonKind,
    args: list[str],
    *,
    port: int,
    url: str,
    env: Mapping[str, str],
    timeout: float,
    web_ui: str = "",
    master: str = "",
) -> DaemonState:
    started = time.perf_counter()
    output = _spark_daemon("submit" if kind.launch == "submit" else "start", kind, args, env)
    match = re.search(r"logging to (\S+)", output)
    log = Path(match.group(1)) if match else daemons_dir() / "logs"
    pid = _read_pid(kind)
    if pid is None:
        raise ExpertError(f"spark-daemon.sh started the {kind.role} but wrote no pid file: {output[-300:]}", str(log))
    state = DaemonState(kind.role, pid, port, url, time.time(), str(log), web_ui, master)
    _write_state(kind, state)
    try:
        _wait_ready(kind, pid, port, log, timeout)
    except BaseException:
        terminate(pid)
        _pid_file(kind).unlink(missing_ok=True)
        raise
    state = DaemonState(**{**asdict(state), "start_seconds": time.perf_counter() - started})
    _write_state(kind, state)
    return state


def daemon_status(kind: DaemonKind) -> DaemonStatus:
    """Running means: the recorded JVM is alive, is ours, and accepts connections on its port."""
    state = _read_state(kind)
    if state is None:
        return DaemonStatus(kind.role, False, "not started")
    if not _is_ours(state.pid, kind):
        return DaemonStatus(kind.role, False, f"not running (last started as pid {state.pid})", state)
    if not port_accepts(state.port):
        return DaemonStatus(
            kind.role, False, f"pid {state.pid} is alive but port {state.port} does not accept connections", state
        )
    return DaemonStatus(kind.role, True, f"running as pid {state.pid} at {state.url}", state)


def _stop(kind: DaemonKind, timeout: float, known: DaemonState | None = None) -> DaemonStatus:
    """Stop the daemon of this kind: the one `known` describes (its caller started it), else the recorded one."""
    status = daemon_status(kind)
    state = known or status.state
    pid = state.pid if state else _read_pid(kind)
    if pid is not None and _is_ours(pid, kind):
        terminate(pid, timeout)
        _pid_file(kind).unlink(missing_ok=True)
        return DaemonStatus(kind.role, False, f"stopped pid {pid}", state)
    _pid_file(kind).unlink(missing_ok=True)
    return DaemonStatus(kind.role, False, "was not running", state)


# --------------------------------------------------------------------------------------------
# Spark Connect server
# --------------------------------------------------------------------------------------------


def connect_server_conf(port: int, features: Iterable[str]) -> dict[str, str]:
    """The server's Spark settings: the local tuning and Delta, plus gRPC bound to loopback."""
    from expert.runtime.spark import jar_conf, local_conf

    conf = local_conf()
    # INFO, not the in-process WARN: the log is the server's only console, and says when it serves.
    conf.pop("spark.log.level", None)
    # Its own warehouse: managed tables of a long-lived server must not collide with in-process sessions'.
    conf["spark.sql.warehouse.dir"] = str(daemons_dir() / "warehouse")
    conf["spark.driver.extraJavaOptions"] = f"{conf['spark.driver.extraJavaOptions']} {MARKER}{daemons_dir()}"
    conf["spark.connect.grpc.binding.address"] = LOOPBACK
    conf["spark.connect.grpc.binding.port"] = str(port)
    conf.update(jar_conf(features))
    return conf


def start_connect_server(
    *,
    port: int = CONNECT_PORT,
    master: str = "local[*]",
    features: Iterable[str] | None = None,
    timeout: float = DEFAULT_START_TIMEOUT_S,
) -> DaemonStart:
    """Start a Spark Connect server with Delta Lake on 127.0.0.1 (or report the running one).

    `features` are the optional connectors its sessions may use (default: every one the
    curriculum's patterns need, since one server serves them all). `master` is where the server's
    own driver runs its jobs: `local[*]`, or `spark://127.0.0.1:7077` for Connect in front of
    the standalone cluster (the shape of Databricks Connect: a thin client, a cluster behind).
    """
    java_check()
    if features is None:
        from expert.runtime.pattern import curriculum

        features = sorted({f for m in curriculum() for f in m.spark_features})
    with _lock():
        status = daemon_status(CONNECT_SERVER)
        if status.running and status.state is not None:
            return DaemonStart(status.state, already_running=True)
        _require_free(port, "Spark Connect server", "--port")
        args = ["--name", "lakehouse-expert-patterns Connect server", "--master", master]
        for key, value in connect_server_conf(port, features).items():
            args += ["--conf", f"{key}={value}"]
        state = _start_daemon(
            CONNECT_SERVER,
            args,
            port=port,
            url=f"sc://{LOOPBACK}:{port}",
            env=daemon_env(),
            timeout=timeout,
            master=master,
        )
        return DaemonStart(state, already_running=False)


def stop_connect_server(timeout: float = STOP_TIMEOUT_S) -> DaemonStatus:
    with _lock():
        return _stop(CONNECT_SERVER, timeout)


def connect_server_status() -> DaemonStatus:
    return daemon_status(CONNECT_SERVER)


# --------------------------------------------------------------------------------------------
# Standalone cluster: one master, one worker
# --------------------------------------------------------------------------------------------


def _cluster_env() -> dict[str, str]:
    marker = f"{MARKER}{daemons_dir()}"
    return daemon_env(
        {
            "SPARK_DAEMON_JAVA_OPTS": marker,
            # The REST submission gateway (port 6066) accepts unauthenticated job submissions:
            # off, since nothing here uses it. No silent port hopping either: a busy port is an error.
            "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false -Dspark.port.maxRetries=0",
            "SPARK_WORKER_OPTS": "-Dspark.port.maxRetries=0",
            "SPARK_WORKER_DIR": str(daemons_dir() / "worker"),
        }
    )


def start_cluster(
    *,
    port: int = MASTER_PORT,
    cores: int | None = None,
    memory: str = "4g",
    timeout: float = DEFAULT_START_TIMEOUT_S,
) -> ClusterStart:
    """Start a standalone master and one worker on 127.0.0.1 (or report the running ones).

    The worker offers `cores` (default: every core) and `memory` to executors; applications
    connect with `SPARK_MASTER=spark://127.0.0.1:<port>`.
    """
    java_check()
    cores = cores or os.cpu_count() or 2
    env = _cluster_env()
    with _lock():
        master_status = daemon_status(MASTER)
        if master_status.running and master_status.state is not None:
            master = DaemonStart(master_status.state, already_running=True)
        else:
            _require_free(port, "Spark master", "--port")
            ui = _ui_port(MASTER_UI_PORT)
            state = _start_daemon(
                MASTER,
                ["--host", LOOPBACK, "--port", str(port), "--webui-port", str(ui)],
                port=port,
                url=f"spark://{LOOPBACK}:{port}",
                env=env,
                timeout=timeout,
                web_ui=f"http://{LOOPBACK}:{ui}",
            )
            master = DaemonStart(state, already_running=False)
        worker_status = daemon_status(WORKER)
        if worker_status.running and worker_status.state is not None:
            return ClusterStart(master, DaemonStart(worker_status.state, already_running=True))
        worker_port = free_port()
        ui = _ui_port(WORKER_UI_PORT)
        args = ["--host", LOOPBACK, "--port", str(worker_port), "--webui-port", str(ui)]
        args += [
            "--cores",
            str(cores),
            "--memory",
            memory,
            "--work-dir",
            str(daemons_dir() / "worker"),
            master.state.url,
        ]
        try:
            state = _start_daemon(
                WORKER,
                args,
                port=worker_port,
                url=f"{LOOPBACK}:{worker_port}",
                env=env,
                timeout=timeout,
                web_ui=f"http://{LOOPBACK}:{ui}",
                master=master.state.url,
            )
        except BaseException:
            if not master.already_running:
                _stop(MASTER, STOP_TIMEOUT_S, master.state)
            raise
        return ClusterStart(master, DaemonStart(state, already_running=False))


def stop_cluster(timeout: float = STOP_TIMEOUT_S) -> tuple[DaemonStatus, DaemonStatus]:
    """Stop the worker (and with it its executors), then the master."""
    with _lock():
        return _stop(WORKER, timeout), _stop(MASTER, timeout)


def cluster_status() -> tuple[DaemonStatus, DaemonStatus]:
    return daemon_status(MASTER), daemon_status(WORKER)


# --------------------------------------------------------------------------------------------
# For tests and scripts: start if needed, stop only what was started here
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def connect_server(
    *, port: int = CONNECT_PORT, master: str = "local[*]", timeout: float = DEFAULT_START_TIMEOUT_S
) -> Iterator[DaemonStart]:
    """A Spark Connect server for the duration of the block (stopped on exit if started here)."""
    started = start_connect_server(port=port, master=master, timeout=timeout)
    try:
        yield started
    finally:
        if not started.already_running:
            with _lock():
                _stop(CONNECT_SERVER, STOP_TIMEOUT_S, started.state)


@contextlib.contextmanager
def standalone_cluster(
    *, port: int = MASTER_PORT, cores: int | None = None, memory: str = "4g", timeout: float = DEFAULT_START_TIMEOUT_S
) -> Iterator[ClusterStart]:
    """A standalone master + worker for the duration of the block (stopped on exit if started here)."""
    started = start_cluster(port=port, cores=cores, memory=memory, timeout=timeout)
    try:
        yield started
    finally:
        with _lock():
            if not started.worker.already_running:
                _stop(WORKER, STOP_TIMEOUT_S, started.worker.state)
            if not started.master.already_running:
                _stop(MASTER, STOP_TIMEOUT_S, started.master.state)


def java_check() -> None:
    """Fail early, with the JDK advice, when Java is missing (spark-daemon.sh would say less)."""
    from expert.runtime.spark import java_runtime

    java_runtime()
