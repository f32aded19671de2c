"""The JVM class archive: only a complete archive a JVM can start with is ever put in place, and
local Spark sessions map it when it is there (expert/runtime/class_archive.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from expert.runtime import class_archive
from expert.runtime.errors import ExpertError
from expert.runtime.spark import java_executable, local_conf


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPERT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real dynamic archive, of the classes `java -version` loads (a second, not Spark's thirty)."""
    target = tmp_path_factory.mktemp("jsa") / "small.jsa"
    java = java_executable()
    assert java is not None
    subprocess.run([java, *class_archive.training_options(target).split(), "-version"], capture_output=True, check=True)
    return target.read_bytes()


def _train_writing(monkeypatch: pytest.MonkeyPatch, content: bytes) -> None:
    monkeypatch.setattr(class_archive, "_train", lambda target: target.write_bytes(content))


def test_a_complete_archive_is_put_in_place_and_every_local_session_maps_it(
    cache: Path, small_archive: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "SharedArchiveFile" not in local_conf()["spark.driver.extraJavaOptions"]
    stale = class_archive.archive_dir() / "spark-0.0.0-oldjava.jsa"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an archive of another Java")
    _train_writing(monkeypatch, small_archive)

    assert class_archive.build().startswith("built the JVM class archive")

    path = class_archive.archive_path()
    assert path is not None and path.read_bytes() == small_archive
    assert f"-XX:SharedArchiveFile={path}" in local_conf()["spark.driver.extraJavaOptions"]
    assert f"-XX:SharedArchiveFile={path}" in local_conf(short_lived=True)["spark.driver.extraJavaOptions"]
    assert not stale.exists(), "another installation's archive is removed once this one is built"
    assert sorted(p.name for p in path.parent.iterdir()) == [".build.lock", path.name], "no temporary file is left"
    assert "in place" in class_archive.build()


def test_a_truncated_archive_crashes_a_jvm_so_it_is_discarded_not_put_in_place(
    cache: Path, small_archive: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _train_writing(monkeypatch, small_archive[: len(small_archive) // 3])

    with pytest.raises(ExpertError, match="did not start with the new class archive"):
        class_archive.build()

    assert sorted(p.name for p in class_archive.archive_dir().iterdir()) == [".build.lock"]
    assert "SharedArchiveFile" not in local_conf()["spark.driver.extraJavaOptions"]


def test_a_failed_build_is_a_warning_and_exit_0_so_setup_goes_on(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_archive(target: Path) -> None:
        raise ExpertError("the training run did not write a class archive: Spark did not start", "see doctor")

    monkeypatch.setattr(class_archive, "_train", no_archive)

    assert class_archive.main([]) == 0

    captured = capsys.readouterr()
    assert "first time only" in captured.out
    assert captured.err.startswith("warning: the training run did not write a class archive: Spark did not start")
    assert "Spark starts without a class archive" in captured.err


def test_the_test_sessions_spark_maps_the_archive_make_setup_built(spark) -> None:  # type: ignore[no-untyped-def]
    """`make test` runs `make setup` first, which builds the archive with a real training run: a build that
    fails there only warns, so this is where CI notices (a local run without one skips)."""
    path = class_archive.archive_path()
    if path is None or not path.is_file():
        message = "no JVM class archive: `make setup` builds it"
        if os.environ.get("EXPERT_REQUIRE_TOOLS") == "1":
            pytest.fail(message + "; in CI its training run must have worked")
        pytest.skip(message)
    options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions")
    assert f"-XX:SharedArchiveFile={path}" in options
