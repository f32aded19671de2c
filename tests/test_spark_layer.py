"""The Spark builder: local tuning, one session per process, clear errors, remote settings honoured."""

from __future__ import annotations

import pytest

from expert.runtime.config import SPARK, resolve_service
from expert.runtime.errors import ExpertError
from expert.runtime.spark import (
    INTERPRETED,
    QUICK_JIT,
    cached_jars,
    feature_packages,
    get_spark,
    java_runtime,
    local_conf,
)


def test_local_session_is_tuned_and_loopback_only(spark) -> None:  # type: ignore[no-untyped-def]
    conf = spark.conf
    assert conf.get("spark.ui.enabled") == "false"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    assert int(conf.get("spark.sql.shuffle.partitions")) <= 8
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert "DeltaSparkSessionExtension" in conf.get("spark.sql.extensions")


def test_only_a_short_lived_session_uses_the_quick_compiler(spark) -> None:  # type: ignore[no-untyped-def]
    assert QUICK_JIT in local_conf(short_lived=True)["spark.driver.extraJavaOptions"].split()
    assert QUICK_JIT not in local_conf()["spark.driver.extraJavaOptions"].split()
    assert QUICK_JIT not in spark.conf.get("spark.driver.extraJavaOptions").split()


def test_a_local_session_generates_no_code_per_query(spark) -> None:  # type: ignore[no-untyped-def]
    """Interpreted evaluation (`INTERPRETED`): no whole-stage code in the plan, and the same answer."""
    assert all(spark.conf.get(key) == value for key, value in INTERPRETED.items())
    assert not INTERPRETED.keys() & local_conf(interpreted=False).keys(), "a named cluster keeps code generation"
    df = spark.range(1_000).selectExpr("id * 2 AS doubled").where("doubled % 3 = 0")
    plan = df._jdf.queryExecution().executedPlan().toString()
    assert "WholeStageCodegen" not in plan and "*(" not in plan, plan
    assert df.count() == len([n for n in range(1_000) if n * 2 % 3 == 0])


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


def test_a_warm_server_session_is_reused_without_probing_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a run holds a session on `expert up`'s server, a later probe that fails (a busy machine)
    must not send it to a local JVM: pyspark, in Connect mode, refuses that (CONNECT_URL_NOT_SET)."""
    from pyspark.sql import SparkSession

    from expert.runtime import spark as spark_module

    class FakeConnectSession:
        is_stopped = False

    probes = iter(["sc://127.0.0.1:15002"])  # a second probe raises StopIteration
    opened: list[str] = []

    def open_remote(url: str, app_name: str) -> FakeConnectSession:
        opened.append(url)
        return FakeConnectSession()

    monkeypatch.setattr(spark_module, "_warm_session", None)
    monkeypatch.setattr(spark_module, "warm_server_url", lambda: next(probes))
    monkeypatch.setattr(spark_module, "_remote_session", open_remote)
    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))
    config = resolve_service(SPARK, {})
    first = get_spark(config=config)
    assert get_spark(config=config) is first, "the second call reuses the warm session"
    assert opened == ["sc://127.0.0.1:15002"]
    FakeConnectSession.is_stopped = True
    with pytest.raises(StopIteration):
        get_spark(config=config)  # a stopped session is not reused: the server is probed again
