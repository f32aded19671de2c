"""Kafka for the patterns: a real single-node broker on loopback by default, your cluster when configured.

Why a real broker: a stand-in that only mimics Kafka's API cannot show what matters in streaming
(partitions, offsets, a consumer that restarts from its checkpoint, a producer's acknowledgements).
Locally this module runs the official Apache Kafka broker in KRaft mode (one JVM that is both
controller and broker, no ZooKeeper), bound to 127.0.0.1 only, with its data and log under
`.work/_shared/kafka/`. Its jars are resolved once through Apache Ivy, the resolver Spark uses
for the Delta jars (same local Maven repository, same Ivy cache, Maven Central); the resolved
classpath is remembered in `.cache/kafka-jars/`, so later starts work offline.

With `KAFKA_BOOTSTRAP_SERVERS` set, nothing is started: `kafka_endpoint` hands out that cluster's
client settings (SASL credentials revealed only into the client configuration).

`expert kafka start|stop|status` exposes the same broker to learners; `kafka_endpoint()` is the
context manager patterns and tests use: it starts the broker if none is running and stops it
afterwards only if it started it.

Version compatibility: the broker is Kafka 4.4.0 (it needs Java 17+, which Spark 4 needs too).
Spark's Kafka source (`spark-sql-kafka-0-10_2.13:4.2.0`) brings kafka-clients 3.9.2; Kafka 4.x
brokers serve clients from 2.1 on (KIP-896), and the broker runs in its own JVM, so the two
client versions never meet on one classpath.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from expert.runtime.config import ServiceConfig, load_settings
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
from expert.runtime.quoting import jaas_quoted
from expert.runtime.workdir import cache_dir, shared_dir

KAFKA_VERSION = "4.4.0"
# The broker and, so its log4j2 logging reaches the log file, the SLF4J 1.x binding of the
# log4j version Kafka 4.4.0 itself depends on.
BROKER_MODULES: tuple[tuple[str, str, str], ...] = (
    ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
    ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.25.5"),
)
SERVER_MAIN = "kafka.Kafka"
"""What `bin/kafka-server-start.sh` runs."""
STORAGE_MAIN = "kafka.tools.StorageTool"
"""What `bin/kafka-storage.sh` runs: KRaft needs its metadata directory formatted once."""
JVM_OPTIONS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    # C1 only: a laptop broker starts in half the time and still moves tens of thousands of events/s.
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
)
DEFAULT_START_TIMEOUT_S = 120.0
FORMAT_TIMEOUT_S = 120.0
IVY_TIMEOUT_S = 900.0
RETENTION_MS = 2 * 60 * 60 * 1000
"""Local topics keep two hours of data: enough for any run, small enough never to fill a disk."""

_client_log = logging.getLogger("expert.kafka.client")
_client_log.addHandler(logging.NullHandler())
_client_log.propagate = False
_children: dict[int, subprocess.Popen[bytes]] = {}
"""Brokers this process started, so stopping them can reap the child."""


def client_logger() -> logging.Logger:
    """A quiet logger for librdkafka (confluent-kafka would otherwise print retries to stderr)."""
    return _client_log


# --------------------------------------------------------------------------------------------
# Where things live
# --------------------------------------------------------------------------------------------


def broker_dir() -> Path:
    return shared_dir("kafka")


def _state_file() -> Path:
    return broker_dir() / "broker.json"


def broker_log_path() -> Path:
    return broker_dir() / "broker.log"


def _cache_dir() -> Path:
    path = cache_dir() / "kafka-jars"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# Jars: resolved with Ivy once, then remembered
# --------------------------------------------------------------------------------------------


def _coordinates() -> str:
    return ",".join(":".join(m) for m in BROKER_MODULES)


def _classpath_listing() -> Path:
    return _cache_dir() / f"{hashlib.sha256(_coordinates().encode()).hexdigest()[:16]}.txt"


def cached_broker_classpath() -> list[str] | None:
    """The jars an earlier resolution found for exactly these modules, if every file is still there."""
    listing = _classpath_listing()
    if not listing.is_file():
        return None
    lines = listing.read_text().splitlines()
    if len(lines) < 2 or lines[0] != _coordinates():
        return None
    jars = lines[1:]
    return jars if all(Path(j).is_file() for j in jars) else None


def _ivy_jar() -> Path:
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("ivy-*.jar"))
    if not jars:
        raise ExpertError("pyspark ships no Ivy jar to resolve the Kafka broker with", "reinstall with `make setup`")
    return jars[-1]


def _ivy_files(work: Path) -> tuple[Path, Path]:
    """Ivy settings equivalent to Spark's defaults, and a module listing what the broker needs."""
    ivy_home = Path.home() / ".ivy2.5.2"
    settings = work / "ivysettings.xml"
    settings.write_text(
        "<ivysettings>\n"
        '  <settings defaultResolver="spark-like"/>\n'
        f'  <caches defaultCacheDir="{ivy_home / "cache"}"/>\n'
        "  <resolvers>\n"
        '    <chain name="spark-like" returnFirst="true">\n'
        f'      <ibiblio name="local-m2-cache" m2compatible="true" root="{(Path.home() / ".m2" / "repository").as_uri()}"/>\n'
        '      <ibiblio name="central" m2compatible="true"/>\n'
        "    </chain>\n"
        "  </resolvers>\n"
        "</ivysettings>\n"
    )
    module = work / "ivy.xml"
    deps = "\n".join(f'    <dependency org="{o}" name="{n}" rev="{r}"/>' for o, n, r in BROKER_MODULES)
    module.write_text(
        '<ivy-module version="2.0">\n'
        '  <info organisation="lakehouse-expert-patterns" module="kafka-broker"/>\n'
        '  <configurations><conf name="default"/></configurations>\n'
        '  <dependencies defaultconfmapping="default->default">\n'
        f"{deps}\n"
        "  </dependencies>\n"
        "</ivy-module>\n"
    )
    return settings, module


def resolve_broker_classpath(java: str) -> list[str]:
    """Resolve the broker's jars with Ivy (network on the first run only) and remember the list."""
    work = _cache_dir() / "ivy"
    work.mkdir(parents=True, exist_ok=True)
    settings, module = _ivy_files(work)
    out, log = work / "classpath.txt", work / "ivy.log"
    out.unlink(missing_ok=True)
    command = [
        java,
        f"-Divy.home={Path.home() / '.ivy2.5.2'}",
        "-jar",
        str(_ivy_jar()),
        "-settings",
        str(settings),
        "-ivy",
        str(module),
        "-confs",
        "default",
        "-cachepath",
        str(out),
    ]
    try:
        with log.open("wb") as sink:
            done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, timeout=IVY_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ExpertError(
            f"resolving the Kafka {KAFKA_VERSION} broker jars took over {IVY_TIMEOUT_S:.0f} s",
            f"check your network or proxy and retry; Ivy's log is {log}",
        ) from None
    if done.returncode != 0 or not out.is_file():
        text = log.read_text(errors="replace")
        missing = "unresolved dependency" in text.lower() or "UNRESOLVED DEPENDENCIES" in text
        raise ExpertError(
            f"could not resolve the Kafka broker jars ({_coordinates()})"
            + (" — no network access to Maven Central?" if missing else ""),
            "the first broker start downloads the official Kafka jars from Maven Central (later starts "
            f"reuse them offline): check your connection or proxy and retry. Ivy's log: {log}",
        )
    jars = [j for j in out.read_text().strip().split(os.pathsep) if j.endswith(".jar")]
    _classpath_listing().write_text("\n".join([_coordinates(), *jars]) + "\n")
    return jars


# --------------------------------------------------------------------------------------------
# The broker process
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerState:
    """What `broker.json` records about the running broker."""

    pid: int
    port: int
    controller_port: int
    started_at: float
    version: str = KAFKA_VERSION
    data_dir: str = ""
    log_file: str = ""
    owner_pid: int | None = None
    """The process whose run started the broker and stops it when the run ends; None for a broker
    started by `expert kafka start`, which stays up until `expert kafka stop`."""

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def orphaned(self) -> bool:
        """Its owner run is gone without stopping it (SIGKILL, a power cut): nobody will stop it."""
        return self.owner_pid is not None and process_command(self.owner_pid) is None


@dataclass(frozen=True)
class BrokerStatus:
    """The truth about the local broker: running or not, and why."""

    running: bool
    detail: str
    state: BrokerState | None = None


@dataclass(frozen=True)
class BrokerStart:
    """What a start did and how long each part took."""

    state: BrokerState
    already_running: bool
    classpath_seconds: float = 0.0
    classpath_resolved_now: bool = False
    format_seconds: float = 0.0
    start_seconds: float = 0.0
    formatted_now: bool = False
    adopted_from: int | None = None
    """The exited owner of the orphaned broker this start took over (it now belongs to the caller)."""


def _read_state() -> BrokerState | None:
    try:
        return BrokerState(**json.loads(_state_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(state: BrokerState) -> None:
    _state_file().write_text(json.dumps(asdict(state), indent=2) + "\n")


def _is_our_broker(pid: int) -> bool:
    command = process_command(pid)
    return command is not None and SERVER_MAIN in command and str(broker_dir()) in command


def broker_status() -> BrokerStatus:
    """Running means: the recorded process is alive, is this project's broker, and accepts connections."""
    state = _read_state()
    if state is None:
        return BrokerStatus(False, "not started (no broker.json)")
    if not _is_our_broker(state.pid):
        return BrokerStatus(False, f"not running (last started as pid {state.pid})", state)
    if not port_accepts(state.port):
        return BrokerStatus(
            False, f"process {state.pid} is alive but port {state.port} does not accept connections", state
        )
    detail = f"running as pid {state.pid} on {state.bootstrap_servers}"
    if state.orphaned:
        detail += f" (orphaned: the run that started it, pid {state.owner_pid}, exited; the next run stops it)"
    return BrokerStatus(True, detail, state)


def _lock() -> contextlib.AbstractContextManager[None]:
    """One start or stop at a time, across processes (two test sessions, a learner's terminal)."""
    return file_lock(broker_dir())


def _server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.ms": str(RETENTION_MS),
        "log.segment.bytes": str(16 * 1024 * 1024),
    }
    return "".join(f"{k}={v}\n" for k, v in settings.items())


LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
"""


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what `random-uuid` prints).

    Like Kafka's own `Uuid.randomUuid`, never one that starts with "-": `kafka-storage format -t -x…`
    reads it as an option and fails (1 id in 64 would).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _pick_ports(port: int | None, previous: BrokerState | None) -> tuple[int, int]:
    if port is not None:
        if not port_free(port):
            raise ExpertError(
                f"port {port} on {LOOPBACK} is already in use, so the Kafka broker cannot listen on it",
                "stop whatever uses it (`ss -ltnp` shows it), choose another --port, or omit --port "
                "to let the system pick a free one",
            )
        broker_port = port
    elif previous and port_free(previous.port):
        broker_port = previous.port
    else:
        broker_port = free_port()
    controller = previous.controller_port if previous and previous.controller_port != broker_port else 0
    if not controller or not port_free(controller):
        controller = free_port()
        while controller == broker_port:
            controller = free_port()
    return broker_port, controller


def start_broker(
    *, port: int | None = None, timeout: float = DEFAULT_START_TIMEOUT_S, owner_pid: int | None = None
) -> BrokerStart:
    """Start the local broker (or find it running) and wait until it answers an admin request.

    `owner_pid` is the process that will stop it (None: nobody, it stays up). A running broker
    whose owner has exited without stopping it is adopted by this caller instead of leaking.
    """
    from expert.runtime.spark import java_runtime

    with _lock():
        status = broker_status()
        if status.running and status.state is not None:
            if port is not None and port != status.state.port:
                raise ExpertError(
                    f"the broker is already running on port {status.state.port}, not {port}",
                    "run `expert kafka stop` first to restart it on another port",
                )
            if status.state.orphaned:
                adopted = replace(status.state, owner_pid=owner_pid)
                _write_state(adopted)
                return BrokerStart(adopted, already_running=True, adopted_from=status.state.owner_pid)
            return BrokerStart(status.state, already_running=True)
        java = java_runtime().executable
        t0 = time.perf_counter()
        classpath = cached_broker_classpath()
        resolved_now = classpath is None
        if classpath is None:
            classpath = resolve_broker_classpath(java)
        classpath_seconds = time.perf_counter() - t0

        home = broker_dir()
        data_dir = home / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        broker_port, controller_port = _pick_ports(port, status.state)
        properties = home / "server.properties"
        properties.write_text(_server_properties(data_dir, broker_port, controller_port))
        log4j = home / "log4j2.properties"
        log4j.write_text(LOG4J2_PROPERTIES)
        jvm = [java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={log4j}", "-cp", os.pathsep.join(classpath)]

        format_seconds, formatted = 0.0, False
        if not (data_dir / "meta.properties").is_file():
            t1 = time.perf_counter()
            try:
                done = subprocess.run(
                    [*jvm, STORAGE_MAIN, "format", "-t", _cluster_id(), "-c", str(properties)],
                    capture_output=True,
                    text=True,
                    timeout=FORMAT_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise ExpertError(
                    f"formatting the broker's storage took over {FORMAT_TIMEOUT_S:.0f} s",
                    "the machine is overloaded: retry when it is quieter",
                ) from None
            if done.returncode != 0:
                raise ExpertError(
                    f"formatting the broker's storage failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}",
                    f"remove {data_dir} and retry (`expert kafka stop` first if a broker is running)",
                )
            format_seconds, formatted = time.perf_counter() - t1, True

        log_path = broker_log_path()
        t2 = time.perf_counter()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*jvm, SERVER_MAIN, str(properties)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=home,
                start_new_session=True,
            )
        _children[process.pid] = process
        state = BrokerState(
            process.pid,
            broker_port,
            controller_port,
            time.time(),
            data_dir=str(data_dir),
            log_file=str(log_path),
            owner_pid=owner_pid,
        )
        _write_state(state)
        try:
            _wait_ready(process, state, timeout)
        except BaseException:
            _terminate(process.pid)
            raise
        return BrokerStart(
            state,
            already_running=False,
            classpath_seconds=classpath_seconds,
            classpath_resolved_now=resolved_now,
            format_seconds=format_seconds,
            start_seconds=time.perf_counter() - t2,
            formatted_now=formatted,
        )


def _wait_ready(process: subprocess.Popen[bytes], state: BrokerState, timeout: float) -> None:
    """Ready means an admin client gets cluster metadata naming this broker."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    admin = None
    log_path = Path(state.log_file)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_tail(log_path)
            if "Address already in use" in tail or "BindException" in tail:
                raise ExpertError(
                    f"the Kafka broker could not bind {LOOPBACK}:{state.port} or :{state.controller_port}: "
                    "the port is in use",
                    "retry `expert kafka start` (it picks free ports), or pass --port with a free port",
                )
            raise ExpertError(
                f"the Kafka broker exited during start-up (exit code {process.returncode}). Log tail:\n{tail}",
                f"read {log_path}; if the data directory is damaged, `expert kafka stop` and remove {state.data_dir}",
            )
        if port_accepts(state.port):
            if admin is None:
                admin = AdminClient({"bootstrap.servers": state.bootstrap_servers, "logger": _client_log})
            with contextlib.suppress(Exception):
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    return
        time.sleep(0.2)
    raise ExpertError(
        f"the Kafka broker did not become ready within {timeout:.0f} s. Log tail:\n{log_tail(log_path)}",
        f"a busy machine needs longer: retry with `expert kafka start --timeout 300`; the full log is {log_path}",
    )


def _terminate(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop a broker JVM, reaping it too when this process started it."""
    terminate(pid, timeout, child=_children.pop(pid, None))


def stop_broker(timeout: float = STOP_TIMEOUT_S) -> BrokerStatus:
    """Stop the local broker if it runs; returns the status it had."""
    with _lock():
        status = broker_status()
        if status.state is not None and _is_our_broker(status.state.pid):
            _terminate(status.state.pid, timeout)
            return BrokerStatus(False, f"stopped pid {status.state.pid}", status.state)
        return status


def kill_broker() -> BrokerState:
    """SIGKILL the local broker, as a power cut or the OOM killer would: no shutdown hook runs.

    For fault tests; returns the state it had, so `start_broker(port=state.port)` brings the same
    broker (same data directory, same port) back.
    """
    with _lock():
        status = broker_status()
        if status.state is None or not _is_our_broker(status.state.pid):
            raise ExpertError("no local Kafka broker is running to kill", "start one with `expert kafka start`")
        pid = status.state.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        child = _children.pop(pid, None)
        if child is not None:
            child.wait(timeout=STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while process_command(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        return status.state


# --------------------------------------------------------------------------------------------
# What clients need
# --------------------------------------------------------------------------------------------

_SASL_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


@dataclass(frozen=True)
class KafkaEndpoint:
    """A cluster to talk to: the local broker or the configured one, with client settings for both APIs."""

    bootstrap_servers: str
    config: ServiceConfig
    started_here: bool = False
    start: BrokerStart | None = None

    @property
    def is_local(self) -> bool:
        return not self.config.is_cloud

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka settings for confluent-kafka producers, consumers and admin clients."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, "logger": _client_log}
        if self.config.is_cloud:
            if protocol := self.config.get("KAFKA_SECURITY_PROTOCOL"):
                conf["security.protocol"] = protocol
            if mechanism := self.config.get("KAFKA_SASL_MECHANISM"):
                password = self.config.secret("KAFKA_SASL_PASSWORD")
                conf["sasl.mechanism"] = mechanism
                conf["sasl.username"] = self.config.get("KAFKA_SASL_USERNAME")
                conf["sasl.password"] = password.get_secret_value() if password else ""
        conf.update(overrides)
        return conf

    def spark_options(self) -> dict[str, str]:
        """`kafka.*` options for Spark's Kafka source and sink (the Java client's property names)."""
        options = {"kafka.bootstrap.servers": self.bootstrap_servers}
        if self.config.is_cloud:
            if protocol := self.config.get("KAFKA_SECURITY_PROTOCOL"):
                options["kafka.security.protocol"] = protocol
            if mechanism := self.config.get("KAFKA_SASL_MECHANISM"):
                module = _SASL_MODULES.get(mechanism.upper())
                if module is None:
                    raise ExpertError(
                        f"KAFKA_SASL_MECHANISM={mechanism} is not one this project can configure for Spark",
                        f"use one of {', '.join(_SASL_MODULES)}",
                    )
                password = self.config.secret("KAFKA_SASL_PASSWORD")
                user = self.config.get("KAFKA_SASL_USERNAME") or ""
                secret = password.get_secret_value() if password else ""
                options["kafka.sasl.mechanism"] = mechanism
                options["kafka.sasl.jaas.config"] = (
                    f"{module} required username={jaas_quoted(user, key='KAFKA_SASL_USERNAME')} "
                    f"password={jaas_quoted(secret, key='KAFKA_SASL_PASSWORD')};"
                )
        return options


@contextlib.contextmanager
def kafka_endpoint(
    config: ServiceConfig | None = None, *, start_timeout: float = DEFAULT_START_TIMEOUT_S
) -> Iterator[KafkaEndpoint]:
    """The cluster a pattern or test uses: the configured one, or the local broker.

    The local broker is started if none is running and stopped on exit only if this call started
    it (or adopted it from a run that died without stopping it), so `expert kafka start` keeps a
    broker up across many runs and tests share one.
    """
    config = config or load_settings().kafka
    if config.is_cloud:
        yield KafkaEndpoint(config.get("KAFKA_BOOTSTRAP_SERVERS") or "", config)
        return
    started = start_broker(timeout=start_timeout, owner_pid=os.getpid())
    owned = not started.already_running or started.adopted_from is not None
    try:
        yield KafkaEndpoint(started.state.bootstrap_servers, config, started_here=owned, start=started)
    finally:
        if owned:
            stop_broker()
