"""The JVM class archive: only a whole archive a JVM starts with is ever put in place, a damaged one is
never mapped, and local Spark sessions map it when it is there (expert/runtime/class_archive.py)."""

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
    """A real dynamic archive, of the classes `java -version` loads (a second to build, not Spark's thirty)."""
    target = tmp_path_factory.mktemp("jsa") / "small.jsa"
    java = java_executable()
    assert java is not None
    subprocess.run([java, *class_archive.training_options(target).split(), "-version"], capture_output=True, check=True)
    return target.read_bytes()


def _train_writing(monkeypatch: pytest.MonkeyPatch, content: bytes) -> None:
    def train(target: Path) -> str:
        target.write_bytes(content)
        return ""  # the class path of `java -version`

    monkeypatch.setattr(class_archive, "_train", train)


def _maps_archive() -> bool:
    return "SharedArchiveFile" in local_conf()["spark.driver.extraJavaOptions"]


def _crash_logs() -> set[Path]:
    return set(Path.cwd().glob("hs_err_pid*.log"))


def test_a_whole_archive_is_put_in_place_and_every_local_session_maps_it(
    cache: Path, small_archive: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not _maps_archive()
    stale = class_archive.archive_dir() / "spark-0.0.0-oldjava.jsa"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an archive of another Java")
    leftover = class_archive.archive_dir() / ".build-killed"
    leftover.mkdir()
    _train_writing(monkeypatch, small_archive)

    assert class_archive.build().startswith("built the JVM class archive")

    path = class_archive.archive_path()
    assert path is not None and path.read_bytes() == small_archive
    assert f"-XX:SharedArchiveFile={path}" in local_conf()["spark.driver.extraJavaOptions"]
    assert f"-XX:SharedArchiveFile={path}" in local_conf(short_lived=True)["spark.driver.extraJavaOptions"]
    assert sorted(p.name for p in path.parent.iterdir()) == [".build.lock", path.name, f"{path.stem}.size"], (
        "another installation's archive and a killed build's directory are removed"
    )
    assert "in place" in class_archive.build()


def test_a_truncated_archive_is_discarded_not_put_in_place_and_not_tried_again_unasked(
    cache: Path, small_archive: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_logs = _crash_logs()
    _train_writing(monkeypatch, small_archive[: len(small_archive) // 3])

    with pytest.raises(ExpertError, match="did not start with the new class archive"):
        class_archive.build()

    path = class_archive.archive_path()
    assert path is not None
    assert sorted(p.name for p in path.parent.iterdir()) == [".build.lock", f"{path.stem}.failed"]
    assert not _maps_archive()
    assert _crash_logs() == crash_logs, "the JVM's crash report stays in the build's temporary directory"
    _train_writing(monkeypatch, small_archive)
    assert class_archive.build().startswith("skipped: the JVM class archive could not be built before")
    assert class_archive.build(retry=True).startswith("built")
    assert _maps_archive()
    assert not (path.parent / f"{path.stem}.failed").exists()


def test_an_archive_whose_size_changed_since_its_build_is_not_mapped_and_is_built_again(
    cache: Path, small_archive: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _train_writing(monkeypatch, small_archive)
    class_archive.build()
    path = class_archive.archive_path()
    assert path is not None and _maps_archive()
    path.chmod(0o644)
    path.write_bytes(small_archive[:1000])  # a partial copy of the repository

    assert not _maps_archive()
    assert class_archive.build().startswith("built")
    assert _maps_archive()


def test_a_failed_build_is_a_warning_and_exit_0_so_setup_goes_on(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_archive(target: Path) -> str:
        raise ExpertError("the training run did not write a class archive: Spark did not start", "see doctor")

    monkeypatch.setattr(class_archive, "_train", no_archive)

    assert class_archive.main([]) == 0

    captured = capsys.readouterr()
    assert "first time only" in captured.out
    assert captured.err.startswith("warning: the training run did not write a class archive: Spark did not start")
    assert "see doctor" in captured.err and "--retry" in captured.err
    assert class_archive.main([]) == 0
    assert "skipped" in capsys.readouterr().out


def test_the_test_sessions_jvm_has_the_archive_make_setup_built_mapped(spark) -> None:  # type: ignore[no-untyped-def]
    """`make test` runs `make setup` first, which builds the archive with a real training run: a build that
    fails there only warns, so this is where CI notices (a local run without one skips)."""
    from pyspark import SparkContext

    path = class_archive.archive_path()
    if not class_archive.usable(path):
        message = "no usable JVM class archive: `make setup` builds it"
        if os.environ.get("EXPERT_REQUIRE_TOOLS") == "1":
            pytest.fail(message + "; in CI its training run must have worked")
        pytest.skip(message)
    maps = Path(f"/proc/{SparkContext._gateway.proc.pid}/maps")  # type: ignore[union-attr]
    if not maps.is_file():
        pytest.skip("no /proc: cannot see what the JVM mapped")
    assert str(path) in maps.read_text(), "the JVM started without mapping the archive"
