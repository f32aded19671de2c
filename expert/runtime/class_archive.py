"""A JDK class-data-sharing (CDS) archive of the classes a local Spark JVM loads, built once by `make setup`.

Why: a cold Spark JVM spends seconds loading and verifying the same few thousand classes from
Spark's jars on every start. Mapped from an archive instead, they cost almost nothing. Measured on
this project's 2-core machine (commit 53107b5, with and without the archive, alternating): a new
process to its first Spark result 6.32/6.70/6.43 s without, 4.04/3.94/4.04 s with; `expert check
databricks/03.2` from a cold process 20.05/20.61 s without, 16.32/16.34 s with. Every local JVM
`get_spark` starts maps it when it is there.

How it stays safe: the JVM writes the archive when it exits (`-XX:ArchiveClassesAtExit`, JDK 13+),
and a JDK 17 JVM that maps a truncated archive crashes. So a training run (a small Delta workload)
writes it to a temporary file, its JVM must exit normally, a JVM with Spark's class path must start
with it mapped and sharing required (`-Xshare:on`: any rejection is an error), and only then is it
renamed into place, with its size recorded beside it: a start maps it only while its size still
matches (a truncated copy of the repository is not mapped). Its name carries the pyspark version,
Spark's jars and the Java binary, so a reinstalled venv or another JDK builds a new one (and the old
one is deleted); anything else that differs the JVM detects itself and runs without it. A build that
failed is not tried again on every `make` until asked (`--retry`). Only classes of Spark's own class
path are archived (Delta's jars come through Spark's class loader).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from expert.runtime.errors import ExpertError
from expert.runtime.timing import Stopwatch
from expert.runtime.workdir import cache_dir

QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
"""A JVM that cannot use the archive (another class path) says so on every start: not a learner's concern."""
TRAINING_TIMEOUT_S = 600
"""The training run: a Spark start, a few Delta operations, and the archive written at exit (~30 s here)."""
RETRY = "`.venv/bin/python -m expert.runtime.class_archive --retry` tries again"


def archive_dir() -> Path:
    return cache_dir() / "jvm"


def archive_path() -> Path | None:
    """This pyspark + Java installation's archive; None without a Java to name it after."""
    import pyspark

    from expert.runtime.spark import java_executable, spark_version

    java = java_executable()
    if java is None:
        return None
    stamp = hashlib.sha256()
    jars = Path(pyspark.__file__).parent / "jars"
    for path in [Path(java).resolve(), *sorted(jars.glob("*.jar"))]:
        with contextlib.suppress(OSError):
            stat = path.stat()
            stamp.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return archive_dir() / f"spark-{spark_version()}-{stamp.hexdigest()[:12]}.jsa"


def _size_file(path: Path) -> Path:
    return path.with_suffix(".size")


def _failed_file(path: Path) -> Path:
    return path.with_suffix(".failed")


def usable(path: Path | None) -> bool:
    """The archive is there, whole (the size its build recorded) and at a path Spark can pass to its JVM."""
    if path is None or any(c.isspace() for c in str(path)):
        return False
    try:
        return path.stat().st_size == int(_size_file(path).read_text())
    except (OSError, ValueError):
        return False


def java_options() -> str:
    """The JVM options that map the archive, or "" when there is no usable one."""
    path = archive_path()
    return f"-XX:SharedArchiveFile={path} {QUIET}" if usable(path) else ""


def training_options(target: Path) -> str:
    """The JVM options of the training run: write the classes it loaded to `target` when it exits."""
    return f"-XX:ArchiveClassesAtExit={target} {QUIET}"


def build(*, retry: bool = False) -> str:
    """Build the archive unless a usable one is there; say what happened. Raises ExpertError when it cannot."""
    path = archive_path()
    if path is None:
        raise ExpertError("no Java found to build the class archive for", "install a JDK 17 or 21, or set JAVA_HOME")
    if usable(path):
        return f"ok: JVM class archive {path.name} ({path.stat().st_size / 1e6:.0f} MB) is in place"
    if any(c.isspace() for c in str(path)):
        raise ExpertError(
            f"the class archive's path has a space in it ({path.parent}), and Spark's launcher splits JVM options "
            "on spaces",
            "clone the repository to a path without spaces (or set EXPERT_CACHE_DIR to one) for the faster start",
        )
    failed = _failed_file(path)
    if failed.is_file() and not retry:
        return f"skipped: the JVM class archive could not be built before ({failed.read_text().strip()}); {RETRY}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(path.parent) as locked:
        if not locked:
            return "ok: another process is building the JVM class archive"
        for leftover in path.parent.glob(".build-*"):  # a build killed before it cleaned up (the lock is ours)
            shutil.rmtree(leftover, ignore_errors=True)
        watch = Stopwatch()
        try:
            with tempfile.TemporaryDirectory(prefix=".build-", dir=path.parent) as tmp:
                candidate = Path(tmp) / path.name
                class_path = _train(candidate)
                _verify(candidate, class_path)
                _size_file(path).write_text(f"{candidate.stat().st_size}\n")
                candidate.replace(path)
        except ExpertError as exc:
            failed.write_text(exc.message + "\n")
            raise
        failed.unlink(missing_ok=True)
        for other in path.parent.glob("spark-*"):
            if other not in (path, _size_file(path)):
                other.unlink(missing_ok=True)
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


def _train(target: Path) -> str:
    """Run a small Delta workload in a child process whose JVM writes the archive as it exits; its class path."""
    from expert.runtime.config import local_child_environment

    child = subprocess.Popen(
        [sys.executable, "-m", "expert.runtime.class_archive", "--train", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=local_child_environment(os.environ),
        start_new_session=True,
    )
    try:
        output, _ = child.communicate(timeout=TRAINING_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise ExpertError(
            f"the training run did not finish within {TRAINING_TIMEOUT_S} s", "run `expert doctor`"
        ) from None
    class_path = target.with_suffix(".classpath")
    if child.returncode != 0 or not target.is_file() or not class_path.is_file():
        last = (output or "").strip().splitlines()[-1:] or [f"exit {child.returncode}"]
        raise ExpertError(
            f"the training run did not write a class archive: {last[0]}",
            "run `expert doctor` to see whether Spark starts",
        )
    return class_path.read_text()


def _verify(candidate: Path, class_path: str) -> None:
    """A JVM with Spark's class path must start with the archive mapped and sharing required (`-Xshare:on`)."""
    from expert.runtime.spark import java_executable

    java = java_executable() or "java"
    crash_log = candidate.parent / "hs_err_pid%p.log"  # in the build's temporary directory, removed with it
    command = [java, "-Xshare:on", f"-XX:SharedArchiveFile={candidate}", *QUIET.split()]
    command += [f"-XX:ErrorFile={crash_log}", "-XX:-CreateCoredumpOnCrash"]
    command += [*(["-cp", class_path] if class_path else []), "-version"]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=120, check=False)
    if result.returncode != 0:
        raise ExpertError(
            f"a JVM did not start with the new class archive (exit {result.returncode}); it was discarded",
            "Spark starts without it",
        )


def _training_run(target: Path) -> int:
    """The child process: a local session writing `target` at exit, a Delta round trip, a normal JVM exit."""
    from pyspark import SparkContext

    from expert.runtime.config import SPARK, ServiceConfig
    from expert.runtime.spark import get_spark

    spark = get_spark(config=ServiceConfig(SPARK, "local"), archive_classes_to=target)
    target.with_suffix(".classpath").write_text(spark.sparkContext._jvm.System.getProperty("java.class.path"))  # type: ignore[union-attr]
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
    return process.wait(timeout=TRAINING_TIMEOUT_S)


def main(argv: list[str] | None = None) -> int:
    """`make setup`'s step: build the archive if need be; whatever happens, warn and exit 0 (it only saves time)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--train"] and len(args) == 2:
        return _training_run(Path(args[1]))
    try:
        path = archive_path()
        if path is not None and not usable(path) and (not _failed_file(path).is_file() or "--retry" in args):
            print("Building the JVM class archive of Spark's classes (first time only, ~30 s)…", flush=True)
        print(build(retry="--retry" in args))
    except ExpertError as exc:
        print(
            f"warning: {exc.message}; Spark starts without a class archive, a few seconds slower. {exc.fix}; {RETRY}",
            file=sys.stderr,
        )
    except Exception as exc:
        print(
            f"warning: the JVM class archive was not built ({type(exc).__name__}: {exc}); "
            f"Spark starts without it, a few seconds slower; {RETRY}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
