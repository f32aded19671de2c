"""Shared test fixtures: one Spark session for the whole run, isolated local engines per test.

- Every test runs local-only: the learner's `.env` and any service keys in the environment are
  hidden, except for tests marked `cloud`, which skip with a clear reason when the service they
  name has no credentials.
- The work root is a fresh directory per test session (removed at the end), with one inside it per
  parallel worker, so tests never touch a pattern's `.work/` state and two sessions or workers never
  clear each other's.
- `spark` is session-scoped, so one per worker process (a cold start costs 10-20 s on 2 cores);
  `workdir` and `snowflake_local` are per test.
- `pattern_run(pattern_id)` runs a pattern's `main()` once per session and caches the outcome, so
  the smoke test and a pattern's own tests share one run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from expert.runtime.config import SERVICES, load_settings
from expert.runtime.report import RunReport

SERVICE_KEYS = sorted({key for spec in SERVICES for key in spec.keys})
_OWN_ROOT = pytest.StashKey[Path]()


SESSION_ROOT = "EXPERT_PYTEST_SESSION_ROOT"
"""The work root a test session made; its parallel workers (`make test` runs two) each make theirs inside it."""


def pytest_configure(config: pytest.Config) -> None:
    """Give this test session its own work root, and each parallel worker its own inside it, so
    concurrent sessions and workers never clear each other's state (or share a broker or a server)."""
    worker, session_root = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get(SESSION_ROOT)
    if worker and session_root and os.environ.get("EXPERT_WORK_ROOT") == session_root:
        root = Path(session_root) / worker
        root.mkdir(exist_ok=True)
        if os.environ.get("EXPERT_PROGRESS_FILE") == str(Path(session_root) / "progress.json"):
            os.environ["EXPERT_PROGRESS_FILE"] = str(root / "progress.json")
        os.environ["EXPERT_WORK_ROOT"] = str(root)
    elif not os.environ.get("EXPERT_WORK_ROOT"):
        parent = Path(config.rootpath) / ".work" / "_pytest"
        parent.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="session-", dir=parent))
        os.environ["EXPERT_WORK_ROOT"] = os.environ[SESSION_ROOT] = str(root)
        os.environ.setdefault("EXPERT_PROGRESS_FILE", str(root / "progress.json"))
        config.stash[_OWN_ROOT] = root


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_OWN_ROOT, None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


PATTERN_RUNS_GROUP, OTHER_TESTS_GROUP = "pattern-runs", "other-tests"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put each test in one of two groups, and skip `cloud` tests whose service has no credentials
    (read from `.env` and the environment).

    The groups are for `make test`'s two workers (`pytest -n 2 --dist loadgroup`): every test that
    uses `pattern_run` runs in one worker, so each pattern still runs once per session and its
    tests share that run; every other test runs in the other worker, beside it. A pattern run keeps
    both cores busy, but the rest of the suite waits on subprocesses, brokers and timeouts much of
    the time: the two overlap. Without `-n` the groups change nothing.
    """
    for item in items:
        uses_a_pattern_run = "pattern_run" in getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.xdist_group(PATTERN_RUNS_GROUP if uses_a_pattern_run else OTHER_TESTS_GROUP))
    settings = None
    for item in items:
        marker = item.get_closest_marker("cloud")
        if marker is None:
            continue
        if settings is None:
            try:
                settings = load_settings()
            except Exception as exc:
                item.add_marker(pytest.mark.skip(reason=f"cloud settings are invalid: {exc}"))
                continue
        for service in marker.args or ("snowflake",):
            if not getattr(settings, service).is_cloud:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"no {service} credentials: set the {service.upper()}_* keys in .env (see .env.example)"
                    )
                )


@pytest.fixture(autouse=True)
def _local_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide `.env`, service keys and the platforms' own credential files from every test not marked `cloud`."""
    if request.node.get_closest_marker("cloud"):
        return
    monkeypatch.setenv("EXPERT_ENV_FILE", os.devnull)
    for key in SERVICE_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SNOWFLAKE_HOME", str(tmp_path))
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "databrickscfg"))


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """The one SparkSession of the test run, with every optional connector the patterns use."""
    from expert.runtime.config import SPARK as SPARK_SPEC
    from expert.runtime.config import ServiceConfig
    from expert.runtime.pattern import curriculum
    from expert.runtime.spark import get_spark

    features = sorted({f for m in curriculum() for f in m.spark_features})
    return get_spark(features, config=ServiceConfig(SPARK_SPEC, "local"))


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A 127.0.0.1 port another socket is listening on for the whole test (what a daemon must refuse)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


@pytest.fixture
def workdir(request: pytest.FixtureRequest) -> Path:
    """A fresh directory for this test under the session's work root."""
    from expert.runtime.workdir import pattern_workdir

    return pattern_workdir("tests", re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)[:80])


@pytest.fixture
def snowflake_local(workdir: Path) -> Iterator:
    """A local Snowflake session (fakesnow) with its databases in this test's workdir."""
    from expert.runtime.config import SNOWFLAKE, resolve_service
    from expert.runtime.snowflake import snowflake_session

    with snowflake_session(resolve_service(SNOWFLAKE, {}), db_path=workdir / "snowflake") as session:
        yield session


def require_tool(name: str, *, installed_by_make_tools: bool = True) -> str:
    """The path of an external tool; skips the test without it, unless CI demands every tool.

    CI (`EXPERT_REQUIRE_TOOLS=1`) can only demand the tools `make tools` installs; a tool it does not
    install (Terraform: not packaged for Debian, a 5-minute source build) always just skips.
    """
    path = shutil.which(name) or str(Path(__file__).parent / ".cache" / "bin" / name)
    if shutil.which(name) or Path(path).is_file():
        return path
    if not installed_by_make_tools:
        pytest.skip(f"{name} is not installed (optional: `make tools` does not install it)")
    message = f"{name} is not installed (`make tools` installs it)"
    if os.environ.get("EXPERT_REQUIRE_TOOLS") == "1":
        pytest.fail(message + "; EXPERT_REQUIRE_TOOLS=1 makes this a failure")
    pytest.skip(message)


@dataclass(frozen=True)
class PatternOutcome:
    exit_code: int
    report: RunReport
    workdir: Path
    argv: tuple[str, ...]
    """The arguments the run got (its `TEST_SIZES` included)."""

    def arg(self, flag: str, default: int) -> int:
        """An integer argument's value in this run (`--rows`), or the pattern's default."""
        return int(self.argv[self.argv.index(flag) + 1]) if flag in self.argv else default


_PATTERN_RUNS: dict[tuple[str, tuple[str, ...]], PatternOutcome] = {}

TEST_SIZES: dict[str, tuple[str, ...]] = {"integration/02": ("--rows", "1000")}
"""Arguments every test run of a pattern gets: the smallest size its invariants need, where size costs time.
integration/02's producer is paced at 100 events/s, so its stream lasts rows / 100 s: 1,000 events still
give a crash mid-stream, late events, redeliveries and both trigger settings their steady windows (all
its checks pass; 38.7 s standalone against 54.5 s at its default 2,000). The other patterns' time is in
their number of Delta operations, not their data size, so they run at their defaults."""


@pytest.fixture
def pattern_run(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Run a pattern's `main()` (once per session for the same arguments, after its `TEST_SIZES`) and
    return its outcome.

    The shared Spark session is started first only for patterns that need Spark, so a
    Snowflake-only pattern's tests never pay for a JVM.
    """
    from expert.runtime.pattern import REPORTS, load_module, select_patterns
    from expert.runtime.workdir import work_root

    def run(pattern_id: str, *argv: str) -> PatternOutcome:
        argv = (*TEST_SIZES.get(pattern_id, ()), *argv)
        key = (pattern_id, argv)
        if key not in _PATTERN_RUNS:
            (meta,) = select_patterns(pattern_id)
            if "spark" in meta.needs:
                request.getfixturevalue("spark")
            code = load_module(meta).main(["--quiet", *argv])
            _PATTERN_RUNS[key] = PatternOutcome(code, REPORTS[-1], work_root() / meta.track / meta.stem, argv)
        return _PATTERN_RUNS[key]

    return run
