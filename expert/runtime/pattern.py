"""The harness every pattern's `main()` runs in, and the curriculum it belongs to.

Why: each script should contain its pattern and nothing else. The harness gives it the parsed
common arguments (`--rows`, `--seed`, `--quiet`), the settings, a fresh workdir, the narrator,
lazy access to the shared Spark and Snowflake sessions, and `check()` for invariants. It turns
a broken invariant into exit code 1 and a setup problem into exit code 2 with a plain message,
and leaves a `RunReport` behind for `expert run` and the tests.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import json
import math
import sys
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from expert import PROJECT_ROOT
from expert.runtime.config import Settings, load_settings
from expert.runtime.endpoints import preflight
from expert.runtime.errors import ArgumentError, ExpertError, InvariantError
from expert.runtime.narrate import Narrator
from expert.runtime.redact import scrub, scrubbed_output
from expert.runtime.report import Check, Figure, PlanEntry, RunReport, SessionTranscript, StatementRecord
from expert.runtime.timing import Stopwatch, stopwatch
from expert.runtime.workdir import pattern_workdir, workdir_lock

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from expert.runtime.snowflake import SnowflakeEndpoint, SnowflakeSession

CURRICULUM_FILE = Path(__file__).resolve().parent.parent / "curriculum.toml"
BENCHMARKS_JSON = PROJECT_ROOT / "BENCHMARKS.json"
READING_LINES_PER_MINUTE = 10
"""A careful reading pace for code a learner is meant to understand, not skim."""


@dataclass(frozen=True)
class PatternMeta:
    """One pattern as the curriculum describes it."""

    track: str
    number: int
    slug: str
    title: str
    minutes: int
    objectives: tuple[str, ...]
    needs: tuple[str, ...]
    spark_features: tuple[str, ...]
    local: tuple[str, ...]
    cloud: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.track}/{self.number:02d}"

    @property
    def stem(self) -> str:
        return f"{self.number:02d}_{self.slug}"

    @property
    def path(self) -> Path:
        return PROJECT_ROOT / "expert" / self.track / f"{self.stem}.py"

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    @property
    def reading_minutes(self) -> float:
        """The script's non-blank lines at READING_LINES_PER_MINUTE."""
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        return len(lines) / READING_LINES_PER_MINUTE

    @property
    def running_minutes(self) -> float | None:
        """Its standalone run time as `expert bench` last measured it (BENCHMARKS.json), if measured."""
        measured = benchmark_seconds().get(self.id)
        return None if measured is None else measured / 60

    @property
    def honest_minutes(self) -> int:
        """What `minutes` in curriculum.toml must say: reading plus running, rounded up."""
        return math.ceil(self.reading_minutes + (self.running_minutes or 0))


@cache
def curriculum() -> tuple[PatternMeta, ...]:
    """Every pattern, in learning order (track order from the file, then number)."""
    data = tomllib.loads(CURRICULUM_FILE.read_text())
    tracks: list[str] = data["tracks"]
    patterns = [
        PatternMeta(
            track=p["track"],
            number=int(p["number"]),
            slug=p["slug"],
            title=p["title"],
            minutes=int(p["minutes"]),
            objectives=tuple(p["objectives"]),
            needs=tuple(p["needs"]),
            spark_features=tuple(p.get("spark_features", ())),
            local=tuple(p.get("local", ())),
            cloud=tuple(p.get("cloud", ())),
        )
        for p in data["pattern"]
    ]
    return tuple(sorted(patterns, key=lambda m: (tracks.index(m.track), m.number)))


@cache
def benchmark_seconds() -> dict[str, float]:
    """Each pattern's standalone seconds from the committed BENCHMARKS.json (empty if absent)."""
    if not BENCHMARKS_JSON.is_file():
        return {}
    patterns = json.loads(BENCHMARKS_JSON.read_text()).get("patterns", {})
    return {pid: float(p["seconds"]) for pid, p in patterns.items() if p.get("seconds") is not None}


def tracks() -> tuple[str, ...]:
    return tuple(dict.fromkeys(m.track for m in curriculum()))


def select_patterns(selector: str) -> list[PatternMeta]:
    """`all`, a track (`snowflake`), or one pattern (`snowflake/02`, `snowflake/2`, `snowflake/02_cost_optimization`)."""
    selector = selector.strip().strip("/")
    if selector in ("", "all"):
        return list(curriculum())
    if selector in tracks():
        return [m for m in curriculum() if m.track == selector]
    track, _, rest = selector.partition("/")
    number = rest.split("_", 1)[0]
    for meta in curriculum():
        if meta.track == track and number.isdigit() and int(number) == meta.number:
            return [meta]
    known = ", ".join(["all", *tracks(), *(m.id for m in curriculum())])
    raise ExpertError(f"unknown pattern {selector!r}", f"choose one of: {known}")


def meta_for_file(path: str | Path) -> PatternMeta:
    resolved = Path(path).resolve()
    for meta in curriculum():
        if meta.path == resolved:
            return meta
    raise ExpertError(f"{resolved} is not listed in {CURRICULUM_FILE.name}", "add it to the curriculum")


def load_module(meta: PatternMeta) -> ModuleType:
    """Import a numbered script (not importable by name) without running it."""
    name = f"expert_pattern_{meta.track}_{meta.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, meta.path)
    if spec is None or spec.loader is None:
        raise ExpertError(f"cannot load {meta.path}", "check the file exists")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if "spark" in meta.needs:
        # Functions Spark ships to other processes (foreachBatch over Spark Connect, UDFs on a
        # cluster) are pickled by reference to their module, and a Connect server or an executor
        # cannot import a numbered script by this name: ship this module's functions by value, as
        # Spark already does for a script run as __main__.
        from pyspark import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    return module


REPORTS: list[RunReport] = []
"""Reports of the runs made in this process, oldest first (read by `expert run` and tests)."""


@dataclass
class PatternRun:
    """What a pattern's body receives: its arguments, state and the shared engines."""

    meta: PatternMeta
    args: argparse.Namespace
    settings: Settings
    workdir: Path
    narrator: Narrator
    report: RunReport
    _snowflake_sessions: list[SnowflakeSession] = field(default_factory=list)
    _cleared_roots: set[str] = field(default_factory=set)
    _step_watch: Stopwatch | None = None

    @property
    def rows(self) -> int:
        return int(self.args.rows)

    @property
    def seed(self) -> int:
        return int(self.args.seed)

    @property
    def spark(self) -> SparkSession:
        """The process's shared Spark session (started on first use)."""
        from expert.runtime.spark import get_spark

        return get_spark(self.meta.spark_features, config=self.settings.spark)

    def lakehouse_root(self, name: str = "lake") -> str:
        """Where this run keeps its tables: a local directory, or object storage when configured.

        `<workdir>/<name>` by default; with `LAKEHOUSE_ROOT` set (e.g. `s3a://bucket/lakehouse`),
        `<LAKEHOUSE_ROOT>/<track>/<NN_slug>/<name>`, emptied on first use in a run as the workdir is,
        so a rerun starts from nothing. Pass it to `MedallionLayout(root, landing_dir=...)`.
        """
        from expert.runtime.storage import clear_root, lakehouse_root, storage_settings

        settings = storage_settings()
        root = lakehouse_root(self.meta.track, self.meta.stem, self.workdir / name, settings)
        if settings.root and root not in self._cleared_roots:
            clear_root(root, settings)
            self._cleared_roots.add(root)
        return root

    @contextlib.contextmanager
    def snowflake(
        self,
        database: str = "EXPERT",
        schema: str = "PUBLIC",
        *,
        endpoint: SnowflakeEndpoint | None = None,
        renamable: bool = True,
    ) -> Iterator[SnowflakeSession]:
        """A Snowflake session; locally its database files live in this run's workdir.

        With `endpoint` (from `snowflake_endpoint`), a session through it, on the same tables as
        the other processes that hold it. On an account the session refuses to drop or replace an
        object these patterns did not create (`--reset-existing` allows it), and SNOWFLAKE_DATABASE /
        SNOWFLAKE_SCHEMA rename `database.schema` unless `renamable` is False (for a pattern whose
        SQL names them).
        """
        from expert.runtime.snowflake import snowflake_session
        from expert.runtime.snowflake_ownership import Ownership

        reset_existing = bool(getattr(self.args, "reset_existing", False))
        if endpoint is not None:
            opened = endpoint.session(self.narrator)
        else:
            opened = snowflake_session(
                self.settings.snowflake,
                db_path=self.workdir / "snowflake",
                database=database,
                schema=schema,
                narrator=self.narrator,
                owner=self.meta.id,
                reset_existing=reset_existing,
                renamable=renamable,
            )
        with opened as session:
            if endpoint is not None and not session.is_local:
                session.ownership = Ownership(self.meta.id, session.database, reset_existing, self.narrator)
            session.plan = self.report.cloud_plan
            self._snowflake_sessions.append(session)
            try:
                yield session
            finally:
                self._snowflake_sessions.remove(session)
                self.report.snowflake_transcripts.append(transcript(session))

    @contextlib.contextmanager
    def snowflake_endpoint(self, database: str = "EXPERT", schema: str = "PUBLIC") -> Iterator[SnowflakeEndpoint]:
        """A picklable way to reach this run's Snowflake from another process (a Spark worker):
        the account from `.env`, or the local engine served on loopback for the block's duration."""
        from expert.runtime.snowflake import snowflake_endpoint

        with snowflake_endpoint(
            self.settings.snowflake,
            db_path=self.workdir / "snowflake",
            database=database,
            schema=schema,
            owner=self.meta.id,
            reset_existing=bool(getattr(self.args, "reset_existing", False)),
        ) as endpoint:
            yield endpoint

    def step(self, title: str, why: str = "") -> None:
        """Start the next numbered step (and time it until the next one); `why` says what it is for."""
        self.end_step()
        self.narrator.step(title, why)
        self.report.step_seconds.append((title, 0.0))
        self._step_watch = Stopwatch()

    def end_step(self) -> None:
        """Stop the current step's clock (the harness calls it when the pattern ends)."""
        if self._step_watch is not None and self.report.step_seconds:
            title, _ = self.report.step_seconds[-1]
            self.report.step_seconds[-1] = (title, self._step_watch.stop())
            self._step_watch = None

    def timed(self) -> contextlib.AbstractContextManager[Stopwatch]:
        """Time a block: `with run.timed() as watch: ...`, then report `watch.seconds` as a figure."""
        return stopwatch()

    def stand_in(self, feature: str, how: str) -> StandIn:
        """Say (once per feature) that a local twin runs in place of a cloud feature.

        Used as `with run.stand_in(...):`, the Snowflake statements issued inside the block are
        marked as the stand-in's, so the saved cloud worksheet leaves them out.
        """
        if self.narrator.stand_in(feature, how):
            self.report.stand_ins.append(feature)
        return StandIn(feature, tuple(self._snowflake_sessions))

    def say(self, text: str) -> None:
        self.narrator.say(text)

    def note(self, text: str) -> None:
        self.narrator.note(text)

    def table(self, rows: Any, *, title: str = "", columns: Sequence[str] | None = None, max_rows: int = 10) -> None:
        self.narrator.table(rows, title=title, columns=columns, max_rows=max_rows)

    def figure(self, label: str, value: float | str, unit: str = "", *, how: str = "", key: bool = False) -> Figure:
        """Record and print a computed figure (`key=True` puts it in the summary table)."""
        fig = Figure(label, value, unit, how, key)
        self.report.figures.append(fig)
        self.narrator.figure(fig)
        return fig

    def check(self, name: str, condition: bool, detail: str = "") -> None:
        """Verify an invariant; a false one stops the pattern with exit code 1."""
        result = Check(name, bool(condition), detail)
        self.report.checks.append(result)
        self.narrator.check(result)
        if not condition:
            raise InvariantError(name, detail or "condition was false")

    def cloud_only_step(
        self, service: str, text: str, reason: str, *, kind: str = "", language: str = "text", purpose: str = ""
    ) -> PlanEntry:
        """Show and save a non-Snowflake step that only runs against a real service (a job deploy, a
        REST call, `terraform apply`): its whole payload, in `language` (json, yaml, hcl, bash, python)."""
        entry = PlanEntry(service, kind, text.strip(), reason, purpose, language, executed=False)
        self.report.cloud_plan.append(entry)
        self.narrator.cloud_step(entry)
        return entry


@dataclass
class StandIn:
    """The block where a local twin plays a cloud feature (see `PatternRun.stand_in`)."""

    feature: str
    sessions: tuple[SnowflakeSession, ...]
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> StandIn:
        for session in self.sessions:
            self._stack.enter_context(session.stand_in(self.feature))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def transcript(session: SnowflakeSession) -> SessionTranscript:
    """A session's statements as the cloud worksheet needs them, each cloud-only one with its reason."""
    pending = iter([r for r in session.ledger if not r.executed])
    records = []
    for entry in session.audit:
        note = ""
        if entry.category in ("cloud-only (recorded)", "recommended (not applied)"):
            record = next(pending, None)
            if record is not None:
                note = f"{record.kind}" + (f", to {record.purpose}" if record.purpose else "")
                note += f". Not run here: {record.reason}" if record.reason else ""
        records.append(StatementRecord(entry.sql, entry.category, entry.ok, entry.params, entry.stand_in, note))
    return SessionTranscript(session.database, session.schema, session.mode, tuple(records))


def base_parser(meta: PatternMeta, default_rows: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python expert/{meta.track}/{meta.stem}.py",
        description=meta.title,
    )
    parser.add_argument("--rows", type=int, default=default_rows, help=f"data size knob (default {default_rows:,})")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument(
        "--brief", action="store_true", help="one line per cloud-only step instead of its whole statement or payload"
    )
    parser.add_argument(
        "--reset-existing",
        action="store_true",
        help="on a real account, let the run drop or replace existing objects these patterns did not create "
        "(their contents are lost; without it the run refuses)",
    )
    return parser


def run_pattern(
    file: str,
    argv: Sequence[str] | None,
    body: Callable[[PatternRun], None],
    *,
    default_rows: int = 10_000,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Parse arguments, prepare the run, execute `body`, print the proof, return the exit code.

    Everything the run prints goes through `scrubbed_output` (no credential reaches the terminal);
    the workdir is held with `workdir_lock` for the whole run (a second run of the pattern stops at
    once); every configured endpoint the pattern needs is probed before `body` starts (a wrong host
    is an error within seconds, not a hang).
    """
    meta = meta_for_file(file)
    parser = base_parser(meta, default_rows)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    with scrubbed_output():
        return _run(meta, args, body)


def _run(meta: PatternMeta, args: argparse.Namespace, body: Callable[[PatternRun], None]) -> int:
    narrator = Narrator(quiet=args.quiet, brief=args.brief)
    report = RunReport(meta.id, meta.title)
    REPORTS.append(report)
    started = time.perf_counter()
    run: PatternRun | None = None
    from expert.runtime.cloud_plan import write_cloud_plan

    try:
        _check_arguments(args)
        settings = load_settings()
        with workdir_lock(meta.track, meta.stem):
            workdir = pattern_workdir(meta.track, meta.stem)
            narrator.header(f"{meta.id} · {meta.title}", _modes_line(meta, settings), why_it_matters(meta))
            run = PatternRun(meta, args, settings, workdir, narrator, report)
            try:
                preflight(meta.needs, settings)
                body(run)
            finally:
                run.end_step()
                record_delta_activity(meta, run)
                write_cloud_plan(run.workdir, report, _modes_line(meta, run.settings))
        report.exit_code = 0
    except InvariantError as exc:
        report.exit_code, report.error = exc.exit_code, f"invariant broken: {exc}"
        narrator.error(f"invariant broken — {exc.name}", exc.detail)
    except ExpertError as exc:
        report.exit_code, report.error = exc.exit_code, exc.message
        narrator.error(exc.message, exc.fix)
    except KeyboardInterrupt:
        report.exit_code, report.error = 130, "interrupted"
        narrator.error("interrupted", "rerun the pattern: it starts from a clean workdir")
    except Exception as exc:
        report.exit_code, report.error = 1, scrub(f"{type(exc).__name__}: {exc}".splitlines()[0])
        traceback.print_exc(limit=6)
        narrator.error(
            f"unexpected {type(exc).__name__} in {meta.id}", "this is a bug in the pattern: please report it"
        )
    report.seconds = time.perf_counter() - started
    if run is not None:
        (run.workdir / "report.json").write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    narrator.summary(report)
    if report.passed:
        from expert.exercises.progress import Progress

        Progress.load().pattern_passed(meta.id, report.seconds)
    return int(report.exit_code)


def record_delta_activity(meta: PatternMeta, run: PatternRun) -> None:
    """Count the Delta commits and MERGEs the run made (local tables under its workdir only)."""
    from expert.runtime.storage import storage_settings

    if "spark" in meta.needs and not storage_settings().root:
        from expert.lakehouse.delta_log import delta_activity

        activity = delta_activity(run.workdir)
        run.report.delta_commits, run.report.delta_merges = activity.commits, activity.merges


def _check_arguments(args: argparse.Namespace) -> None:
    """The common arguments' ranges: a negative seed or a size below one row is a user error."""
    if int(args.seed) < 0:
        raise ArgumentError(f"--seed {args.seed} is negative", "pass a seed of 0 or more (default 42)")
    if int(args.rows) < 1:
        raise ArgumentError(f"--rows {args.rows} is not a size", "pass --rows with a positive number")


def why_it_matters(meta: PatternMeta) -> str:
    """The docstring's "Why it matters" paragraph, which the header prints."""
    docstring = ast.get_docstring(ast.parse(meta.path.read_text())) or ""
    for paragraph in docstring.split("\n\n"):
        if paragraph.startswith("Why it matters"):
            return " ".join(line.strip() for line in paragraph.splitlines())
    return ""


def _modes_line(meta: PatternMeta, settings: Settings) -> str:
    services = {
        "spark": settings.spark,
        "snowflake": settings.snowflake,
        "kafka": settings.kafka,
        "mlflow": settings.mlflow,
    }
    modes = {name: services[name].mode for name in meta.needs if name in services}
    if "spark" in modes and not settings.spark.is_cloud:
        from expert.runtime.spark import warm_server_url

        if warm := warm_server_url():
            modes["spark"] = f"local, through the warm server at {warm} (expert up)"
    parts = [f"{name}: {mode}" for name, mode in modes.items()]
    if "spark" in meta.needs and not settings.databricks.is_cloud:
        parts.append("databricks workspace: not configured (workspace steps are shown, not run)")
    return " · ".join(parts)
