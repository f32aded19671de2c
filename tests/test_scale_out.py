"""Scale-out lanes: the Spark-side patterns, unchanged, over Spark Connect and on a standalone cluster.

Each lane starts its daemons on 127.0.0.1 (module fixtures stop them), then runs every existing
Spark-side pattern's `main(["--quiet", "--rows", N])` in ONE fresh Python process with
`SPARK_REMOTE` or `SPARK_MASTER` set, so the test session's own in-process Spark is untouched, and
collects each pattern's exit code. A pattern not written yet is skipped with that reason.

Run the lanes (they start their own JVMs: hold the Spark lock for the whole run):
    flock /tmp/expert-spark.lock .venv/bin/pytest -m "connect or cluster" tests/test_scale_out.py

This file is also the lane's runner: `python tests/test_scale_out.py OUT.json ID...` runs the
given patterns in one process and writes their outcomes to OUT.json as it goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from expert.runtime.cluster import DaemonState
from expert.runtime.config import SERVICES
from expert.runtime.daemon import free_port
from expert.runtime.errors import ExpertError
from expert.runtime.storage import KEYS as STORAGE_KEYS

LANE_ROWS = os.environ.get("EXPERT_LANE_ROWS", "")
"""Empty: each pattern at its default size, the size its own smoke test verifies locally (and sized
to run in seconds), so a lane failure means "this engine differs", not "this size is too small"
(at 2,000 rows databricks/01's Z-order check and integration/03's A/B minimum do not hold even
locally). Set EXPERT_LANE_ROWS to force one size for every pattern."""
LANE_TIMEOUT_S = 1_500.0
ROOT = Path(__file__).resolve().parent.parent

# A lane runs inside the first test that uses its fixture: allow for the whole lane, not one test.
pytestmark = pytest.mark.timeout(LANE_TIMEOUT_S + 300)


@dataclass(frozen=True)
class LaneResult:
    """Every pattern's outcome in one lane, the session start, and where the output went."""

    outcomes: dict[str, dict[str, Any]]
    session: dict[str, Any]
    log: Path
    seconds: float
    timed_out: bool


def spark_side_patterns() -> list[str]:
    from expert.runtime.pattern import curriculum

    return [m.id for m in curriculum() if "spark" in m.needs]


def written(pattern_id: str) -> bool:
    from expert.runtime.pattern import select_patterns

    return select_patterns(pattern_id)[0].exists


def lane_env(work_root: Path, **spark: str) -> dict[str, str]:
    """A clean environment for the lane's process: no `.env`, no service keys but the Spark one."""
    keys = {key for spec in SERVICES for key in spec.keys} | set(STORAGE_KEYS)
    env = {k: v for k, v in os.environ.items() if k not in keys}
    env.update(EXPERT_ENV_FILE=os.devnull, EXPERT_WORK_ROOT=str(work_root), PYTHONUNBUFFERED="1", **spark)
    return env


def run_lane(name: str, work_root: Path, **spark: str) -> LaneResult:
    """Run every written Spark-side pattern in one fresh process; return outcomes even after a hang."""
    ids = [p for p in spark_side_patterns() if written(p)]
    work_root.mkdir(parents=True, exist_ok=True)
    out, log = work_root / f"{name}-outcomes.json", work_root / f"{name}-lane.log"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    timed_out = False
    with log.open("wb") as sink:
        try:
            subprocess.run(
                [sys.executable, __file__, str(out), *ids],
                env=lane_env(work_root, **spark),
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=LANE_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            timed_out = True
    written_out = json.loads(out.read_text()) if out.is_file() else {}
    return LaneResult(
        written_out.get("patterns", {}), written_out.get("session", {}), log, time.perf_counter() - started, timed_out
    )


def check_pattern(lane: LaneResult, pattern_id: str) -> None:
    if not written(pattern_id):
        pytest.skip(f"{pattern_id} is not written yet")
    if lane.session.get("error"):
        pytest.fail(f"the lane's Spark session did not start: {lane.session['error']} (log: {lane.log})")
    outcome = lane.outcomes.get(pattern_id)
    if outcome is None:
        why = "the lane timed out before it" if lane.timed_out else "the lane process died before it"
        pytest.fail(f"{pattern_id} did not run: {why}; see {lane.log}")
    assert outcome["exit_code"] == 0, (
        f"{pattern_id} exited {outcome['exit_code']}: {outcome['error']} (log: {lane.log})"
    )


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process `pid` listens on, from /proc (Linux)."""
    inodes = set()
    for fd in (Path("/proc") / str(pid) / "fd").iterdir():
        target = str(fd.readlink()) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        lines = (Path("/proc") / str(pid) / "net" / table).read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            hex_ip, hex_port = local.split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc prints the address as 32-bit little-endian words.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            ip = socket.inet_ntop(family, raw)
            found.add((ip.removeprefix("::ffff:"), int(hex_port, 16)))
    return found


def not_loopback(addresses: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """The addresses that are NOT loopback (a server of this project must have none)."""
    return {(ip, port) for ip, port in addresses if not (ip.startswith("127.") or ip == "::1")}


@contextlib.contextmanager
def private_work_root(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """Daemons' pid files, logs and the worker's directory outside the session's work root.

    Another pytest session starting on this machine empties `.work/_pytest/` (conftest); a
    worker whose directory vanishes mid-run fails every task that fetches a file.
    """
    root = factory.mktemp(name)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXPERT_WORK_ROOT", str(root))
        yield root


@dataclass(frozen=True)
class LaneRun:
    """A lane's outcomes and what was observed of its daemons while they ran (they are stopped now)."""

    lane: LaneResult
    daemons: dict[str, DaemonState]
    listening: dict[str, set[tuple[str, int]]]
    master_json: dict[str, Any]


# ---------------------------------------------------------------------------------- Spark Connect


@pytest.fixture(scope="module")
def connect_lane(tmp_path_factory: pytest.TempPathFactory) -> LaneRun:
    """Start a Connect server, run the lane against it, stop it (before the cluster lane starts)."""
    from expert.runtime.cluster import connect_server, port_free

    port = 15002 if port_free(15002) else free_port()
    with private_work_root(tmp_path_factory, "connect-daemons"), connect_server(port=port) as started:
        listening = {"connect-server": listening_addresses(started.state.pid)}
        lane = run_lane("connect", tmp_path_factory.mktemp("connect-lane"), SPARK_REMOTE=started.state.url)
    print(
        f"\nconnect lane: server started in {started.state.start_seconds:.1f} s; client session to first result "
        f"{lane.session.get('seconds_to_first_result')} s; {len(lane.outcomes)} pattern(s) in {lane.seconds:.1f} s "
        f"(log {lane.log}): " + json.dumps(lane.outcomes)
    )
    return LaneRun(lane, {"connect-server": started.state}, listening, {})


@pytest.mark.connect
def test_connect_server_binds_loopback_only(connect_lane: LaneRun) -> None:
    server = connect_lane.daemons["connect-server"]
    assert server.url == f"sc://127.0.0.1:{server.port}"
    assert ("127.0.0.1", server.port) in connect_lane.listening["connect-server"]
    assert not_loopback(connect_lane.listening["connect-server"]) == set()


@pytest.mark.connect
@pytest.mark.parametrize("pattern_id", spark_side_patterns())
def test_pattern_runs_over_spark_connect(connect_lane: LaneRun, pattern_id: str) -> None:
    check_pattern(connect_lane.lane, pattern_id)


# ---------------------------------------------------------------------------------- standalone cluster


@pytest.fixture(scope="module")
def cluster_lane(tmp_path_factory: pytest.TempPathFactory) -> LaneRun:
    """Start a master and a worker, run the lane on them, read the master's view, stop them."""
    import requests

    from expert.runtime.cluster import port_free, standalone_cluster

    port = 7077 if port_free(7077) else free_port()
    with (
        private_work_root(tmp_path_factory, "cluster-daemons"),
        standalone_cluster(port=port, cores=2, memory="4g") as started,
    ):
        daemons = {"master": started.master.state, "worker": started.worker.state}
        listening = {role: listening_addresses(state.pid) for role, state in daemons.items()}
        lane = run_lane("cluster", tmp_path_factory.mktemp("cluster-lane"), SPARK_MASTER=started.url)
        master_json = requests.get(f"{started.master.state.web_ui}/json/", timeout=10).json()
    print(
        f"\ncluster lane: master started in {started.master.state.start_seconds:.1f} s, worker registered "
        f"{started.worker.state.start_seconds:.1f} s later; driver session to first result "
        f"{lane.session.get('seconds_to_first_result')} s; {len(lane.outcomes)} pattern(s) in {lane.seconds:.1f} s "
        f"(log {lane.log}): " + json.dumps(lane.outcomes)
    )
    return LaneRun(lane, daemons, listening, master_json)


@pytest.mark.cluster
def test_cluster_has_a_registered_worker_and_binds_loopback_only(cluster_lane: LaneRun) -> None:
    state = cluster_lane.master_json
    assert state["status"] == "ALIVE"
    assert state["aliveworkers"] == 1
    assert state["cores"] == 2
    assert cluster_lane.daemons["master"].url.startswith("spark://127.0.0.1:")
    for role, addresses in cluster_lane.listening.items():
        assert addresses, f"{role} listens nowhere?"
        assert not_loopback(addresses) == set(), f"{role} listens beyond loopback"


@pytest.mark.cluster
def test_the_patterns_really_ran_on_the_cluster(cluster_lane: LaneRun) -> None:
    """The master saw the lane's application, with executors on the worker, not a local[*] driver."""
    if not cluster_lane.lane.outcomes:
        pytest.skip("no Spark-side pattern is written yet")
    apps = cluster_lane.master_json["completedapps"] + cluster_lane.master_json["activeapps"]
    ours = [app for app in apps if app["name"] == "lakehouse-expert-patterns"]
    assert ours, apps
    assert all(app["cores"] > 0 for app in ours)


@pytest.mark.cluster
@pytest.mark.parametrize("pattern_id", spark_side_patterns())
def test_pattern_runs_on_standalone_cluster(cluster_lane: LaneRun, pattern_id: str) -> None:
    check_pattern(cluster_lane.lane, pattern_id)


# ---------------------------------------------------------------------------------- clear errors


@pytest.fixture
def own_daemons_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A work root of its own, so nothing another test (or a learner) started is seen as running."""
    monkeypatch.setenv("EXPERT_WORK_ROOT", str(tmp_path))
    return tmp_path


@pytest.mark.cluster
@pytest.mark.usefixtures("own_daemons_dir")
def test_busy_master_port_is_a_clear_error(busy_port: int) -> None:
    from expert.runtime.cluster import start_cluster

    with pytest.raises(ExpertError, match=f"port {busy_port} on 127.0.0.1 is already in use") as err:
        start_cluster(port=busy_port)
    assert "ss -ltnp" in err.value.fix


@pytest.mark.connect
@pytest.mark.usefixtures("own_daemons_dir")
def test_busy_connect_port_is_a_clear_error(busy_port: int) -> None:
    from expert.runtime.cluster import start_connect_server

    with pytest.raises(ExpertError, match=f"port {busy_port} on 127.0.0.1 is already in use"):
        start_connect_server(port=busy_port)


@pytest.mark.cluster
@pytest.mark.usefixtures("own_daemons_dir")
def test_daemon_not_ready_in_time_says_so_with_the_log_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    import expert.runtime.cluster
    from expert.runtime.cluster import cluster_status, start_cluster

    with monkeypatch.context() as never_ready:
        # A short timeout alone is a race: on a fast machine the master already serves when
        # `spark-daemon.sh start` returns. Here its port never accepts, so the wait must time out.
        never_ready.setattr(expert.runtime.cluster, "port_accepts", lambda port: False)
        with pytest.raises(ExpertError, match=r"was not ready within 0 s\. Log tail:\n") as err:
            start_cluster(port=free_port(), timeout=0.01)
    assert "--timeout" in err.value.fix
    assert not any(status.running for status in cluster_status()), "a failed start leaves nothing running"


@pytest.mark.usefixtures("own_daemons_dir")
def test_cli_status_of_nothing_started_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    from expert.cli import main

    assert main(["spark", "cluster", "status"]) == 3
    assert main(["spark", "connect-server", "status"]) == 3
    out = capsys.readouterr().out
    assert "Spark master: not started" in out and "Spark Connect server: not started" in out


@pytest.mark.usefixtures("own_daemons_dir")
def test_cli_start_on_a_busy_port_is_one_error_and_its_fix(busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    from expert.cli import main

    assert main(["spark", "connect-server", "start", "--port", str(busy_port)]) == 2
    err = capsys.readouterr().err
    assert f"error: port {busy_port} on 127.0.0.1 is already in use" in err
    assert "fix:" in err and "--port" in err


# ---------------------------------------------------------------------------------- object storage


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on 127.0.0.1 (moto's server mode), with a `lake` bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "local-only")
        env.setenv("AWS_SECRET_ACCESS_KEY", "local-only")
        env.setenv("AWS_REGION", "us-east-1")
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="lake")
        try:
            yield endpoint
        finally:
            server.stop()


def bucket_keys(endpoint: str, prefix: str = "") -> list[str]:
    import boto3

    pages = (
        boto3.client("s3", endpoint_url=endpoint)
        .get_paginator("list_objects_v2")
        .paginate(Bucket="lake", Prefix=prefix)
    )
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_storage_root_defaults_to_the_runs_workdir(tmp_path: Path) -> None:
    from expert.runtime.storage import lakehouse_root, storage_settings

    settings = storage_settings(environ={}, env_file=Path(os.devnull))
    assert settings.root is None and not settings.is_object_store
    assert settings.spark_features() == frozenset() and settings.spark_conf() == {}
    assert lakehouse_root("databricks", "01_x", tmp_path / "lake", settings) == str((tmp_path / "lake").resolve())


def test_storage_root_uri_is_per_pattern_and_the_environment_beats_dotenv(tmp_path: Path) -> None:
    from expert.runtime.storage import lakehouse_root, storage_settings

    dotenv = tmp_path / ".env"
    dotenv.write_text("LAKEHOUSE_ROOT=s3a://from-dotenv/lh\nLAKEHOUSE_S3_ENDPOINT=http://127.0.0.1:9000\nOTHER=x\n")
    settings = storage_settings(environ={"LAKEHOUSE_ROOT": "s3a://from-env/lh/"}, env_file=dotenv)
    assert settings.root == "s3a://from-env/lh/" and settings.s3_endpoint == "http://127.0.0.1:9000"
    assert settings.scheme == "s3a" and settings.is_object_store
    assert lakehouse_root("databricks", "01_x", tmp_path / "lake", settings) == "s3a://from-env/lh/databricks/01_x/lake"


def test_s3a_endpoint_settings_never_fall_back_to_instance_metadata() -> None:
    import pyspark

    from expert.runtime.spark import feature_packages
    from expert.runtime.storage import StorageSettings

    settings = StorageSettings("s3a://lake/lh", "http://127.0.0.1:9000")
    conf = settings.spark_conf()
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith("EnvironmentVariableCredentialsProvider")
    assert settings.spark_features() == frozenset({"s3a"})
    # hadoop-aws must be exactly the Hadoop version of the client jars pyspark ships.
    (hadoop_aws,) = feature_packages(["s3a"])
    runtime = [j.name for j in (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-runtime-*.jar")]
    assert runtime == [f"hadoop-client-runtime-{hadoop_aws.rsplit(':', 1)[1]}.jar"]
    assert StorageSettings("s3a://lake/lh").spark_conf() == {}, "real AWS: hadoop-aws's own defaults"


@pytest.mark.parametrize("root", ["abfss://c@account.dfs.core.windows.net/lh", "gs://bucket/lh"])
def test_other_object_stores_with_a_local_session_are_a_clear_error(root: str) -> None:
    from expert.runtime.storage import StorageSettings

    with pytest.raises(ExpertError, match="only wires s3a://") as err:
        StorageSettings(root).spark_features()
    assert "SPARK_REMOTE" in err.value.fix


def test_a_runs_object_store_prefix_is_cleared_once_and_only_that_prefix(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    import boto3

    from expert.runtime.config import load_settings
    from expert.runtime.narrate import Narrator
    from expert.runtime.pattern import PatternRun, select_patterns
    from expert.runtime.report import RunReport

    monkeypatch.setenv("LAKEHOUSE_ROOT", "s3a://lake/lh")
    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT", s3_endpoint)
    (meta,) = select_patterns("databricks/01")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for key in ("lh/databricks/01_production_pipelines/lake/old", "lh/databricks/02_monitoring/lake/keep"):
        s3.put_object(Bucket="lake", Key=key, Body=b"x")
    run = PatternRun(
        meta, argparse.Namespace(), load_settings(), tmp_path, Narrator(quiet=True), RunReport(meta.id, "")
    )

    root = run.lakehouse_root()
    assert root == "s3a://lake/lh/databricks/01_production_pipelines/lake"
    assert bucket_keys(s3_endpoint, "lh/") == ["lh/databricks/02_monitoring/lake/keep"]
    s3.put_object(Bucket="lake", Key="lh/databricks/01_production_pipelines/lake/new", Body=b"x")
    assert run.lakehouse_root() == root
    assert "lh/databricks/01_production_pipelines/lake/new" in bucket_keys(s3_endpoint), "cleared once per run"


@pytest.mark.s3a
def test_medallion_pipeline_runs_on_s3a_object_storage(s3_endpoint: str, tmp_path: Path) -> None:
    """databricks/01 with its tables on s3a:// (moto on loopback): same checks, tables in the bucket."""
    from expert.lakehouse import BRONZE_TABLES, DIM_CUSTOMER, GOLD_DAILY_SALES, SILVER_EVENTS, SILVER_ORDERS

    if not written("databricks/01"):
        pytest.skip("databricks/01 is not written yet")
    env = lane_env(tmp_path, LAKEHOUSE_ROOT="s3a://lake/lh", LAKEHOUSE_S3_ENDPOINT=s3_endpoint)
    root = "s3a://lake/lh/databricks/01_production_pipelines/lake"
    log = tmp_path / "s3a.log"
    with log.open("wb") as sink:
        done = subprocess.run(
            [
                sys.executable,
                "expert/databricks/01_production_pipelines.py",
                "--quiet",
                "--root",
                root,
                *(["--rows", LANE_ROWS] if LANE_ROWS else []),
            ],
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=LANE_TIMEOUT_S,
            check=False,
        )
    assert done.returncode == 0, f"exit {done.returncode}; log {log}:\n{log.read_text()[-3000:]}"
    keys = bucket_keys(s3_endpoint, "lh/databricks/01_production_pipelines/lake/")
    for table in (*BRONZE_TABLES.values(), SILVER_EVENTS, SILVER_ORDERS, DIM_CUSTOMER, GOLD_DAILY_SALES):
        first_commit = f"lh/databricks/01_production_pipelines/lake/tables/{table}/_delta_log/00000000000000000000.json"
        assert first_commit in keys, f"{table} has no Delta log in the bucket"
    assert not (tmp_path / "databricks" / "01_production_pipelines" / "lake").exists(), "no table went to local disk"


# ---------------------------------------------------------------------------------- the lane's runner


def _run_patterns(out: Path, ids: list[str]) -> None:
    """Run each pattern's main() in this process, sharing one session as `expert run` does."""
    from expert.runtime.pattern import REPORTS, load_module, select_patterns
    from expert.runtime.spark import get_spark

    metas = [select_patterns(pattern_id)[0] for pattern_id in ids]
    result: dict[str, Any] = {"session": {}, "patterns": {}}
    started = time.perf_counter()
    try:
        # Every connector the lane's patterns need, in the one session they share.
        get_spark(sorted({feature for meta in metas for feature in meta.spark_features})).range(1).count()
        result["session"]["seconds_to_first_result"] = round(time.perf_counter() - started, 1)
    except Exception as exc:
        result["session"]["error"] = re.sub(r"\s+", " ", f"{type(exc).__name__}: {exc}")[:500]
        out.write_text(json.dumps(result, indent=2))
        return
    argv = ["--quiet", *(["--rows", LANE_ROWS] if LANE_ROWS else [])]
    for meta in metas:
        before = len(REPORTS)
        started = time.perf_counter()
        print(f"=== {meta.id} {' '.join(argv)}", flush=True)
        try:
            code = load_module(meta).main(argv)
            error = REPORTS[-1].error if len(REPORTS) > before else ""
        except Exception as exc:
            code, error = -1, re.sub(r"\s+", " ", f"{type(exc).__name__}: {exc}")[:500]
        seconds = round(time.perf_counter() - started, 1)
        result["patterns"][meta.id] = {"exit_code": code, "error": error, "seconds": seconds}
        print(f"=== {meta.id}: exit {code} in {seconds} s {error}", flush=True)
        out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    _run_patterns(Path(sys.argv[1]), sys.argv[2:])
