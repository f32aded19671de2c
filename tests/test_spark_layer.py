"""The Spark builder: local tuning, one session per process, clear errors, remote settings honoured."""

from __future__ import annotations

import pytest

from expert.runtime.config import SPARK, resolve_service
from expert.runtime.errors import ExpertError
from expert.runtime.spark import cached_jars, feature_packages, get_spark, java_runtime


def test_local_session_is_tuned_and_loopback_only(spark) -> None:  # type: ignore[no-untyped-def]
    conf = spark.conf
    assert conf.get("spark.ui.enabled") == "false"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    assert int(conf.get("spark.sql.shuffle.partitions")) <= 8
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert "DeltaSparkSessionExtension" in conf.get("spark.sql.extensions")


def test_get_spark_reuses_the_running_session(spark) -> None:  # type: ignore[no-untyped-def]
    assert get_spark(config=resolve_service(SPARK, {})) is spark


def test_resolved_jars_are_cached_for_offline_starts(spark) -> None:  # type: ignore[no-untyped-def]
    packages = ",".join([p for p in spark.conf.get("spark.jars.packages", "").split(",") if p])
    jars = spark.conf.get("spark.jars", "")
    assert "delta-spark" in jars
    if packages:  # this process resolved with Ivy: the listing must now exist
        assert cached_jars(packages)


def test_unknown_feature_is_a_clear_error() -> None:
    with pytest.raises(ExpertError, match="unknown Spark feature"):
        feature_packages(["flink"])
    assert feature_packages(["kafka"])[0].startswith("org.apache.spark:spark-sql-kafka-0-10_2.13:")


def test_java_is_found_and_supported() -> None:
    java = java_runtime()
    assert java.major >= 17


def test_missing_java_is_a_plain_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(ExpertError, match="Java was not found at JAVA_HOME") as err:
        java_runtime()
    assert "JDK 17 or 21" in err.value.fix
