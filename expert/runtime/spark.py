"""The one Spark/Delta session builder: local by default, a cluster or Spark Connect when configured.

Why one builder: every script pasting its own `SparkSession.builder` is how version drift and
slow tests start. This one is tuned for a 2-core laptop (UI off, few shuffle partitions, small
Delta snapshot partitions, loopback only), resolves the Delta jars through
`configure_spark_with_delta_pip` on first use and remembers the resolved jar list so later runs
start without Ivy (and offline). `getOrCreate` semantics: a whole curriculum run starts the JVM
once. `SPARK_REMOTE` (Spark Connect, the protocol of Databricks Connect and serverless) and a
`spark://` master in `SPARK_MASTER` are honoured for remote clusters.

The JVM's console output goes to a log file under the work root, so a learner sees the pattern's
narration rather than log4j warnings; on a failed start the log is read to say what went wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from expert.runtime.config import ServiceConfig, load_settings
from expert.runtime.errors import ExpertError
from expert.runtime.redact import redact_url, scrub
from expert.runtime.workdir import cache_dir, shared_dir

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SUPPORTED_JAVA = (17, 21)
"""Java releases Spark 4.x is built and tested for."""


def spark_version() -> str:
    from importlib.metadata import version

    return version("pyspark")


def hadoop_version() -> str:
    """The Hadoop client pyspark bundles: Hadoop connectors (hadoop-aws) must match it exactly."""
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))
    if not jars:
        raise ExpertError("pyspark ships no hadoop-client-api jar", "reinstall with `make setup`")
    return jars[-1].name.removeprefix("hadoop-client-api-").removesuffix(".jar")


def feature_packages(features: Iterable[str]) -> list[str]:
    """Maven coordinates for optional Spark features, matched to the installed pyspark."""
    known = {
        "kafka": f"org.apache.spark:spark-sql-kafka-0-10_2.13:{spark_version()}",
        # s3a:// object storage; brings the AWS SDK v2 `bundle` jar (about 690 MB, cached after the first run).
        "s3a": f"org.apache.hadoop:hadoop-aws:{hadoop_version()}",
    }
    unknown = sorted(set(features) - set(known) - set(EXTRA_TASK_SLOTS))
    if unknown:
        choices = ", ".join([*known, *EXTRA_TASK_SLOTS])
        raise ExpertError(f"unknown Spark feature(s): {', '.join(unknown)}", f"use one of: {choices}")
    return [known[f] for f in sorted(set(features)) if f in known]


EXTRA_TASK_SLOTS = {"realtime": 4}
"""Features that need task slots beyond one per core. Real-time Mode keeps every task of its query
running for the whole (long) batch, one per Kafka partition, so the micro-batch queries beside it
need slots of their own; a local master offers as many slots as it is told, whatever the cores."""


def local_master(features: Iterable[str], cores: int | None = None) -> str:
    """`local[*]`, or `local[cores + extra]` when a feature needs more task slots than cores."""
    extra = sum(EXTRA_TASK_SLOTS.get(f, 0) for f in set(features))
    return f"local[{(cores or os.cpu_count() or 2) + extra}]" if extra else "local[*]"


@dataclass(frozen=True)
class JavaRuntime:
    executable: str
    version: str
    major: int


def java_executable() -> str | None:
    """The `java` spark-submit will run: JAVA_HOME's first, else the one on PATH; None if there is none."""
    java_home = os.environ.get("JAVA_HOME")
    executable = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    return executable if executable and Path(executable).exists() else None


def java_runtime() -> JavaRuntime:
    """Find the Java that Spark will use (JAVA_HOME first, like spark-submit) and check it."""
    java_home = os.environ.get("JAVA_HOME")
    executable = java_executable()
    if executable is None:
        raise ExpertError(
            "Java was not found" + (f" at JAVA_HOME={java_home}" if java_home else " on PATH"),
            "install a JDK 17 or 21 (Debian/Ubuntu: sudo apt-get install openjdk-17-jdk-headless) "
            "and make sure `java -version` works, or set JAVA_HOME to it",
        )
    try:
        out = subprocess.run([executable, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExpertError(f"could not run {executable} -version: {exc}", "reinstall the JDK") from exc
    match = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
    if not match:
        raise ExpertError(f"{executable} did not report a version", "reinstall a JDK 17 or 21")
    version = match.group(1)
    major = int(version.split(".")[1]) if version.startswith("1.") else int(re.split(r"[.+-]", version)[0])
    if major < SUPPORTED_JAVA[0]:
        raise ExpertError(
            f"Java {version} is too old for Spark {spark_version()} (needs 17 or 21)",
            "install a JDK 17 or 21 and point JAVA_HOME at it",
        )
    return JavaRuntime(executable, version, major)


def _jar_list_file(packages: str) -> Path:
    digest = hashlib.sha256(packages.encode()).hexdigest()[:16]
    return cache_dir() / "spark-jars" / f"{digest}.txt"


def cached_jars(packages: str) -> list[str] | None:
    """Jars resolved by an earlier run for exactly these packages, if every file is still there."""
    listing = _jar_list_file(packages)
    if not listing.is_file():
        return None
    lines = listing.read_text().splitlines()
    if not lines or lines[0] != packages:
        return None
    jars = lines[1:]
    return jars if jars and all(Path(j.removeprefix("file:")).is_file() for j in jars) else None


def spark_packages(features: Iterable[str] = ()) -> str:
    """The Maven coordinates `get_spark` resolves: Delta Lake for this pyspark plus the features' connectors."""
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = configure_spark_with_delta_pip(SparkSession.builder, extra_packages=feature_packages(features))
    return str(builder._options.get("spark.jars.packages", ""))


def jar_conf(features: Iterable[str] = ()) -> dict[str, str]:
    """Settings that put Delta (and the features' connectors) on another JVM's classpath.

    For JVMs this process does not build itself (a Spark Connect server): the jars an earlier run
    resolved when they are all still there (no Ivy, works offline), else the packages to resolve.
    """
    packages = spark_packages(features)
    jars = cached_jars(packages)
    return {"spark.jars": ",".join(jars)} if jars else {"spark.jars.packages": packages}


def _remember_jars(packages: str, spark_jars: str) -> None:
    jars = [j for j in spark_jars.split(",") if j]
    if jars:
        listing = _jar_list_file(packages)
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("\n".join([packages, *jars]) + "\n")


@contextlib.contextmanager
def _console_to(log_path: Path) -> Iterator[None]:
    """Send the JVM's stdout/stderr (inherited file descriptors) to a log file while it starts."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log_path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


_started_features: frozenset[str] | None = None
_warm_session: SparkSession | None = None
"""The Connect session to `expert up`'s server, once opened: later calls reuse it rather than probe
the server again (a probe that times out on a busy machine must not send a run back to a local JVM)."""


QUICK_JIT = "-XX:TieredStopAtLevel=1"
"""Compile with the JVM's quick compiler (C1) only: for a JVM that lives for one short task (one exercise
check, `expert check ID`), the optimizing compiler's work never pays back and, on 2 cores, competes with the
task. Measured on the nine Spark checks' solutions, one new `expert check` process each, the sum of their
wall times went from 129.3 s to 109.7 s. Not for a JVM that stays: a warm worker's re-checks were 17-43 %
slower with it (databricks/03.2: 6.86 s against 4.79 s), so everything but `expert check ID` (watch mode,
`check --all`, patterns, tests, `expert up`'s server, the bench's other measurements) keeps both compilers."""


INTERPRETED = {"spark.sql.codegen.factoryMode": "NO_CODEGEN"}
"""Evaluate expressions and operators interpreted, generating no Java code per query (Spark then also
skips whole-stage code generation). Why, on a laptop: the patterns run hundreds of small queries (MERGEs,
Delta log replays, micro-batches of a few hundred rows), and every new query's generated classes are
compiled by Janino and then by the JVM's JIT before they pay back. Measured on 2 cores: in a standalone
databricks/01 run the JVM spent 54.4 of its 107 CPU seconds in its JIT compiler threads (C2 43.7, C1 10.7),
and the run took 58.5-59.1 s with this setting against 71.3-71.8 s without (three runs against two, alternating);
`spark.sql.codegen.wholeStage=false` alone changed nothing (71.8-72.1 s against 72.4 s). Spark documents
the key as internal (its own test suites run every expression both ways), so it is set only where data is
small by construction: local sessions and the local servers `expert up` and the lanes start, never on a
cluster named by SPARK_MASTER. One public call fails in this mode on Spark 4.2: `spark.catalog.listTables()`
cannot build its `Table` objects (EXPRESSION_DECODING_FAILED); `SHOW TABLES` works, and so does the call
after `spark.conf.set("spark.sql.codegen.factoryMode", "FALLBACK")` (README, Troubleshooting)."""


def local_conf(
    cores: int | None = None,
    *,
    short_lived: bool = False,
    archive_classes_to: Path | None = None,
    interpreted: bool = True,
) -> dict[str, str]:
    """The local tuning: small, loopback-only, UTC, Delta SQL extension and catalog, interpreted
    expressions (`INTERPRETED`, unless `interpreted` is False: a cluster the learner named), Spark's
    classes mapped from the class archive when `make setup` built one (`expert.runtime.class_archive`)."""
    from expert.runtime import class_archive

    cores = cores or os.cpu_count() or 2
    archive = class_archive.training_options(archive_classes_to) if archive_classes_to else class_archive.java_options()
    java_options = " ".join(
        option
        for option in ("-Duser.timezone=UTC -XX:+UseParallelGC", QUICK_JIT if short_lived else "", archive)
        if option
    )
    partitions = str(max(2, min(cores, 8)))
    warehouse = shared_dir("spark-warehouse")
    return {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": os.environ.get("EXPERT_SPARK_DRIVER_MEMORY", "4g"),
        "spark.driver.extraJavaOptions": java_options,
        "spark.sql.shuffle.partitions": partitions,
        "spark.default.parallelism": partitions,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.databricks.delta.snapshotPartitions": partitions,
        "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
        "spark.log.level": "WARN",
        **(INTERPRETED if interpreted else {}),
    }


def get_spark(
    features: Iterable[str] = (),
    *,
    config: ServiceConfig | None = None,
    app_name: str = "lakehouse-expert-patterns",
    short_lived: bool = False,
    archive_classes_to: Path | None = None,
) -> SparkSession:
    """Return the process's Spark session, starting it on first call.

    `features` names optional connectors the caller needs (e.g. "kafka"); the first call decides
    the jar set for the process, so `expert run` asks for the union of what its patterns need.
    `short_lived` (one exercise check in a new process) starts a local JVM with the quick compiler only (`QUICK_JIT`);
    like `features`, the first call decides, and it changes nothing for a remote or warm-server session.
    `archive_classes_to` (the class archive's training run only) starts a local JVM, never a warm-server
    session, that writes the classes it loaded to that file when it exits.
    """
    global _started_features
    config = config or load_settings().spark
    if (remote := config.secret("SPARK_REMOTE")) is not None:
        return _remote_session(remote.get_secret_value(), app_name)
    from expert.runtime.storage import storage_settings

    storage = storage_settings()
    wanted = frozenset(features) | storage.spark_features()

    from pyspark.sql import SparkSession

    global _warm_session
    if _warm_session is not None and not _warm_session.is_stopped:
        return _warm_session
    active = SparkSession.getActiveSession()
    local_only = archive_classes_to is not None
    if active is None and not config.is_cloud and not storage.root and not local_only and (warm := warm_server_url()):
        _warm_session = _remote_session(warm, app_name)
        return _warm_session
    if active is not None and _started_features is not None:
        missing = wanted - _started_features
        if missing:
            raise ExpertError(
                f"this process's Spark session was started without {', '.join(sorted(missing))}",
                "run the pattern on its own, or through `expert run`, which starts Spark with every "
                "feature its patterns need",
            )
        return active

    java_runtime()
    from delta import configure_spark_with_delta_pip

    master = config.get("SPARK_MASTER") if config.is_cloud else None
    builder = SparkSession.builder.master(master or local_master(wanted)).appName(app_name)
    for key, value in {
        # A cluster the learner named holds data of any size: Spark's code generation stays on there.
        **local_conf(short_lived=short_lived, archive_classes_to=archive_classes_to, interpreted=not master),
        **storage.spark_conf(),
    }.items():
        builder = builder.config(key, value)
    builder = configure_spark_with_delta_pip(builder, extra_packages=feature_packages(wanted))
    packages = builder._options.get("spark.jars.packages", "")
    jars = cached_jars(packages)
    if jars:
        builder = builder.config("spark.jars.packages", "").config("spark.jars", ",".join(jars))

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    log_path = spark_log_path()
    try:
        with _console_to(log_path):
            spark = builder.getOrCreate()
    except Exception as exc:
        raise _start_failure(exc, log_path, packages, first_run=jars is None) from None
    if jars is None:
        _remember_jars(packages, spark.conf.get("spark.jars", ""))
    _started_features = wanted
    return spark


def spark_log_path() -> Path:
    return shared_dir("logs") / "spark-driver.log"


def _start_failure(exc: Exception, log_path: Path, packages: str, *, first_run: bool) -> ExpertError:
    log = log_path.read_text(errors="replace")[-20000:] if log_path.exists() else ""
    if "unresolved dependency" in log.lower() or "UNRESOLVED DEPENDENCIES" in log:
        return ExpertError(
            f"Spark could not download its packages ({packages}) from Maven Central",
            "the first run needs network access to Maven Central (later runs reuse "
            f"the jars offline); check your connection or proxy, then retry. JVM log: {log_path}",
        )
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ExpertError(
        f"Spark did not start: {detail}",
        f"run `expert doctor`; the JVM log is {log_path}"
        + (" (first run: Spark resolves Delta jars from Maven Central)" if first_run else ""),
    )


def _remote_session(url: str, app_name: str) -> SparkSession:
    """A Spark Connect session, after a bounded gRPC handshake: a closed port or a silent server is
    an error within seconds, not Spark Connect's minutes of retries. Messages name the server by
    `redact_url` (scheme, host, port): the URL's `;token=` never reaches the terminal."""
    from pyspark.sql import SparkSession

    from expert.runtime.endpoints import probe_spark_connect

    probe_spark_connect(url)
    try:
        return SparkSession.builder.remote(url).appName(app_name).getOrCreate()
    except Exception as exc:
        reason = scrub(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        raise ExpertError(
            f"could not open a Spark Connect session at SPARK_REMOTE={redact_url(url)}: {reason}",
            "start the server (or check the URL and its token), or unset SPARK_REMOTE to run Spark locally",
        ) from None


def warm_server_url() -> str | None:
    """The Spark Connect server `expert up` keeps running for this work root, if it is up.

    A local run uses it instead of starting its own JVM, so a learner's second run skips the JVM
    start and the JIT warm-up. `EXPERT_NO_WARM_SERVER=1` turns this off.
    """
    if os.environ.get("EXPERT_NO_WARM_SERVER") == "1":
        return None
    from expert.runtime.cluster import connect_server_status

    status = connect_server_status()
    return status.state.url if status.running and status.state is not None else None


def stop_spark() -> None:
    """Stop the process's session (the CLI does this once, at the very end)."""
    global _started_features, _warm_session
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    if _warm_session is not None:
        _warm_session.stop()
    _started_features = None
    _warm_session = None
