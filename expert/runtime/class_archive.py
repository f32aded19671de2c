"""A JDK class-data-sharing (CDS) archive of the classes a local Spark JVM loads, built once by `make setup`.

Why: a cold Spark JVM spends seconds loading and verifying the same few thousand classes from
Spark's jars on every start. Mapped from an archive instead, they cost almost nothing: measured on
this project's 2-core machine, a new process to its first Spark result took 6.3-6.7 s without the
archive and 3.9-4.0 s with it, and `expert check databricks/03.2` from a cold process 18.7-19.0 s
against 15.0-15.2 s. Every local JVM `get_spark` starts maps it when it is there.

How it stays safe: the JVM writes the archive when it exits (`-XX:ArchiveClassesAtExit`, JDK 13+),
and a JVM that maps a truncated archive crashes. So a training run (a small Delta workload) writes
it to a temporary file, the JVM must exit normally, a `java -version` must start with it mapped, and
only then is it renamed into place, atomically. Its name carries the pyspark version and the Java
installation, so another JDK or another Spark gets its own archive; anything else that differs (the
class path) the JVM detects itself and then runs without it, as it would with no archive at all.
Only classes of Spark's own class path are archived (Delta's jars come through Spark's class loader).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from expert.runtime.errors import ExpertError
from expert.runtime.timing import Stopwatch

QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
"""A JVM that cannot use the archive (another class path) says so on every start: not a learner's concern."""
EXIT_TIMEOUT_S = 180
"""How long the training JVM may take to write the archive once asked to exit (about 11 s measured here)."""


def archive_dir() -> Path:
    from expert.runtime.spark import cache_dir

    return cache_dir() / "jvm"


def archive_path() -> Path | None:
    """Where this pyspark + Java installation's archive lives; None without a Java to name it after."""
    from expert.runtime.spark import java_executable, spark_version

    java = java_executable()
    if java is None:
        return None
    real = Path(java).resolve()
    with contextlib.suppress(OSError):
        stamp = f"{real}:{real.stat().st_mtime_ns}:{real.stat().st_size}"
        return archive_dir() / f"spark-{spark_version()}-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}.jsa"
    return None


def java_options() -> str:
    """The JVM options that map the archive, or "" when there is none yet."""
    path = archive_path()
    return f"-XX:SharedArchiveFile={path} {QUIET}" if path is not None and path.is_file() else ""


def training_options(target: Path) -> str:
    """The JVM options of the training run: write the classes it loaded to `target` when it exits."""
    return f"-XX:ArchiveClassesAtExit={target} {QUIET}"


def build() -> str:
    """Build the archive unless it is there; say what happened. Raises ExpertError when it cannot."""
    path = archive_path()
    if path is None:
        raise ExpertError("no Java found to build the class archive for", "install a JDK 17 or 21, or set JAVA_HOME")
    if path.is_file():
        return f"ok: JVM class archive {path.name} ({path.stat().st_size / 1e6:.0f} MB) is in place"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(path.parent) as locked:
        if not locked:
            return "ok: another process is building the JVM class archive"
        if path.is_file():
            return f"ok: JVM class archive {path.name} is in place"
        watch = Stopwatch()
        with tempfile.TemporaryDirectory(prefix=".build-", dir=path.parent) as tmp:
            candidate = Path(tmp) / path.name
            _train(candidate)
            _verify(candidate)
            candidate.replace(path)
        for stale in path.parent.glob("spark-*.jsa"):
            if stale != path:
                stale.unlink(missing_ok=True)
        return (
            f"built the JVM class archive {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {watch.stop():.0f} s: "
            "local Spark starts map Spark's classes from it"
        )


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[bool]:
    with (directory / ".build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _train(target: Path) -> None:
    """Run a small Delta workload in a child process whose JVM writes the archive as it exits."""
    result = subprocess.run(
        [sys.executable, "-m", "expert.runtime.class_archive", "--train", str(target)],
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S + 300,
        check=False,
    )
    if result.returncode != 0 or not target.is_file():
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        raise ExpertError(
            f"the training run did not write a class archive: {detail[0]}",
            "Spark starts without it (a few seconds slower); run `expert doctor` to see why Spark cannot start",
        )


def _verify(candidate: Path) -> None:
    """A JVM must start with the archive mapped: a truncated one crashes it, so it never gets renamed."""
    from expert.runtime.spark import java_executable

    java = java_executable() or "java"
    result = subprocess.run(
        [java, f"-XX:SharedArchiveFile={candidate}", *QUIET.split(), "-version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise ExpertError(
            f"a JVM did not start with the new class archive (exit {result.returncode}); it was discarded",
            "Spark starts without it (a few seconds slower)",
        )


def _training_run(target: Path) -> int:
    """The child process: a local session writing `target` at exit, a Delta round trip, a normal JVM exit."""
    from pyspark import SparkContext

    from expert.runtime.config import SPARK, ServiceConfig
    from expert.runtime.spark import get_spark

    spark = get_spark(config=ServiceConfig(SPARK, "local"), archive_classes_to=target)
    with tempfile.TemporaryDirectory(prefix="expert-cds-") as tmp:
        table = f"{tmp}/t"
        spark.range(100).selectExpr("id", "id % 7 AS k").write.format("delta").save(table)
        spark.sql(
            f"MERGE INTO delta.`{table}` t USING (SELECT 1 AS id, 1 AS k) s ON t.id = s.id "
            "WHEN MATCHED THEN UPDATE SET k = s.k WHEN NOT MATCHED THEN INSERT *"
        )
        spark.read.format("delta").load(table).groupBy("k").count().toPandas()
        spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()
    gateway = SparkContext._gateway
    spark.stop()
    process = getattr(gateway, "proc", None)
    if process is None or process.stdin is None:
        return 1
    process.stdin.close()  # the gateway exits on end of input: a normal JVM exit, which writes the archive
    return process.wait(timeout=EXIT_TIMEOUT_S)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--train"] and len(args) == 2:
        return _training_run(Path(args[1]))
    path = archive_path()
    if path is not None and not path.is_file():
        print("Building the JVM class archive of Spark's classes (first time only, ~30 s)…", flush=True)
    try:
        print(build())
    except (ExpertError, subprocess.TimeoutExpired, OSError) as exc:
        message = exc.message if isinstance(exc, ExpertError) else str(exc)
        print(f"warning: {message}; Spark starts without a class archive (a few seconds slower)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
