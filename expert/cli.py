"""The `expert` command: list the curriculum, run patterns in one process, check the machine.

expert list                      tracks, patterns, objectives and status
expert run [all|TRACK|TRACK/NN]  run patterns in curriculum order, one process, one SparkSession
expert doctor [--quick]          check Python, Java, Spark + Delta, the local Snowflake engine,
                                 each service's mode and credentials; each failure with its fix
expert kafka start|stop|status   the local single-node Kafka broker (KRaft, 127.0.0.1) the
                                 streaming patterns use; kept running across runs once started
expert spark connect-server start|stop|status
                                 a Spark Connect server with Delta on 127.0.0.1:15002: run the
                                 patterns over it with SPARK_REMOTE=sc://127.0.0.1:15002
expert bench [--scales 1e5,1e6]  measure startup, every pattern, the medallion at scale; writes BENCHMARKS.md
expert exercises [--json]        every exercise with your status (not started / failing / passed)
expert check ID | --all [--report FILE.json]
                                 check an exercise (exit 0 passed, 1 failed, 2 bad input), or all of them
expert hint ID · expert reset ID · expert watch [ID] · expert progress
                                 a hint; the starter back; re-check on save; the completion checklist
expert capstone check [--manifest FILE]
                                 verify the capstone's ten requirements from your artifacts
expert up · expert down               keep a warm local Spark server running (local runs use it), or stop it
expert spark cluster start|stop|status
                                 a standalone master + worker on 127.0.0.1: run the patterns on
                                 it with SPARK_MASTER=spark://127.0.0.1:7077
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from expert import PROJECT_ROOT
from expert.runtime.config import ServiceConfig, Settings
from expert.runtime.errors import ExpertError
from expert.runtime.pattern import REPORTS, PatternMeta, curriculum, load_module, select_patterns, tracks
from expert.runtime.redact import scrub, scrubbed_output
from expert.runtime.report import RunReport

console = Console(highlight=False)
LEARNING_COMMANDS = ("exercises", "check", "hint", "reset", "watch", "progress", "capstone")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="expert", description="Lakehouse Expert Patterns")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show the curriculum")
    run = sub.add_parser("run", help="run patterns in curriculum order")
    run.add_argument("selector", nargs="?", default="all", help="all, a track, or TRACK/NN (default: all)")
    run.add_argument("--quiet", action="store_true", help="show only progress and the summary")
    run.add_argument("--json", type=Path, metavar="FILE", help="also write every run's figures and timings to FILE")
    doctor = sub.add_parser("doctor", help="check this machine and the configuration")
    doctor.add_argument("--quick", action="store_true", help="skip starting Spark and the local engines")
    kafka = sub.add_parser("kafka", help="start, stop or inspect the local Kafka broker")
    kafka.add_argument("action", choices=("start", "stop", "status"))
    kafka.add_argument("--port", type=int, help="broker port on 127.0.0.1 (default: the last one, else a free one)")
    kafka.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the broker (default 120)")
    _add_spark_parser(sub)
    up = sub.add_parser("up", help="keep a warm local Spark (Connect server) running: later runs skip the JVM start")
    up.add_argument("--port", type=int, default=15002, help="gRPC port on 127.0.0.1 (default 15002)")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the server (default 120)")
    sub.add_parser("down", help="stop the warm Spark server `expert up` started")
    bench = sub.add_parser("bench", help="measure startup, every pattern and the medallion at scale (BENCHMARKS.md)")
    from expert.bench import add_arguments as add_bench_arguments

    add_bench_arguments(bench)
    from expert.exercises.commands import add_parsers as add_learning_parsers

    add_learning_parsers(sub)
    args = parser.parse_args(argv)
    with scrubbed_output():
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:  # noqa: PLR0911 (one return per subcommand)
    """Run one subcommand; a user error is two plain lines (`error:`, `fix:`) and exit 2."""
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args.selector, quiet=args.quiet, json_path=args.json)
        if args.command == "kafka":
            return cmd_kafka(args.action, port=args.port, timeout=args.timeout)
        if args.command == "spark":
            return cmd_spark(args)
        if args.command in ("up", "down"):
            return cmd_warm(args)
        if args.command == "bench":
            from expert.bench import run_bench

            return run_bench(args)
        if args.command in LEARNING_COMMANDS:
            from expert.exercises.commands import dispatch

            return dispatch(args)
        return cmd_doctor(quick=args.quick)
    except ExpertError as exc:
        Console(stderr=True, highlight=False).print(f"[red bold]error:[/] {escape(exc.message)}")
        if exc.fix:
            Console(stderr=True, highlight=False).print(f"[bold]fix:[/] {escape(exc.fix)}")
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        return 130


def cmd_list() -> int:
    for track in tracks():
        console.rule(f"[bold]{track} track")
        for meta in (m for m in curriculum() if m.track == track):
            status = "[green]ready[/]" if meta.exists else "[yellow]not yet written[/]"
            console.print(
                f"[bold cyan]{meta.id}[/]  [bold]{escape(meta.title)}[/]  "
                f"[dim]({_minutes(meta)} · needs {', '.join(meta.needs)})[/]  {status}"
            )
            for objective in meta.objectives:
                console.print(f"    • {escape(objective)}")
    ready = sum(m.exists for m in curriculum())
    console.print(f"\n{ready} of {len(curriculum())} patterns ready. Run one with: expert run TRACK/NN")
    return 0


def _minutes(meta: PatternMeta) -> str:
    """`minutes` from the curriculum, with how it splits into reading and running."""
    if not meta.exists:
        return f"{meta.minutes} min"
    running = meta.running_minutes
    split = f"{meta.reading_minutes:.0f} reading + " + (f"{running:.1f} running" if running else "running not measured")
    return f"{meta.minutes} min: {split}"


@dataclass
class Outcome:
    meta: PatternMeta
    result: str
    seconds: float
    figures: str = ""
    cloud_only: int = 0
    report: RunReport | None = None


def cmd_run(selector: str, *, quiet: bool = False, json_path: Path | None = None) -> int:
    """Run the selected patterns in order, in this process, sharing one Spark session."""
    selected = select_patterns(selector)
    if json_path is not None:
        _check_output_path(json_path, "--json")
    runnable = [m for m in selected if m.exists]
    outcomes: list[Outcome] = [Outcome(m, "not yet written", 0.0) for m in selected if not m.exists]
    started = time.perf_counter()
    spark_start = _start_shared_spark(runnable) if any("spark" in m.needs for m in runnable) else None
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("patterns", total=len(runnable))
        for meta in runnable:
            progress.update(task, description=f"running {meta.id}")
            outcomes.append(_run_one(meta, quiet=quiet))
            progress.advance(task)
        progress.update(task, description="done")
    order = {m.id: i for i, m in enumerate(curriculum())}
    outcomes.sort(key=lambda o: order[o.meta.id])
    total = time.perf_counter() - started
    _print_summary(outcomes, total)
    if json_path is not None:
        _write_json(json_path, outcomes, total=total, spark_start=spark_start)
    return _exit_code(outcomes) if runnable else 1


def _exit_code(outcomes: list[Outcome]) -> int:
    """0 if every pattern passed; 2 if the only failures are user errors (setup, configuration,
    arguments: each said what to fix); 1 if any invariant broke or any pattern crashed."""
    failed = [o for o in outcomes if o.result not in ("passed", "not yet written")]
    if not failed:
        return 0
    user_errors = all(o.report is not None and o.report.exit_code == ExpertError.exit_code for o in failed)
    return ExpertError.exit_code if user_errors else 1


def _check_output_path(path: Path, option: str) -> None:
    """Refuse, before any work, an output path that cannot be written as a file."""
    if path.is_dir():
        raise ExpertError(f"{option} {path} is a directory", f"give {option} a file name, e.g. {path / 'run.json'}")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ExpertError(f"{option} {path}: {parent} is a file, not a directory", f"choose another path for {option}")


def _start_shared_spark(patterns: list[PatternMeta]) -> float:
    """Start the one Spark session every pattern of this run shares; returns seconds to a first result."""
    from expert.runtime.spark import get_spark

    features = sorted({f for m in patterns for f in m.spark_features})
    with console.status("Starting Spark (the first run downloads the Delta Lake jars)…"):
        t0 = time.perf_counter()
        get_spark(features).range(1).count()
        seconds = time.perf_counter() - t0
    console.print(f"Spark ready in {seconds:.1f} s" + (f" with {', '.join(features)}" if features else ""))
    return seconds


def _write_json(path: Path, outcomes: list[Outcome], *, total: float, spark_start: float | None) -> None:
    """The run as data (for `expert bench` and CI): per pattern its result, seconds and every figure."""
    patterns = []
    for o in outcomes:
        report = o.report
        patterns.append(
            {
                **(report.as_dict() if report else {"id": o.meta.id}),
                "result": o.result,
                "seconds": round(o.seconds, 3),
                "checks_passed": sum(c.passed for c in report.checks) if report else 0,
                "cloud_only": o.cloud_only,
            }
        )
    document = {"total_seconds": round(total, 3), "spark_start_seconds": spark_start, "patterns": patterns}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(scrub(json.dumps(document, indent=2, default=str)) + "\n")
    except OSError as exc:
        raise ExpertError(f"cannot write {path}: {exc.strerror or exc}", "choose a writable path for --json") from None


def _run_one(meta: PatternMeta, *, quiet: bool) -> Outcome:
    before = len(REPORTS)
    t0 = time.perf_counter()
    try:
        code = load_module(meta).main(["--quiet"] if quiet else [])
    except Exception as exc:
        console.print(
            f"[red]{meta.id} crashed: {escape(type(exc).__name__)}: {escape(str(exc).splitlines()[0] if str(exc) else '')}[/]"
        )
        return Outcome(meta, "crashed", time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    report = REPORTS[-1] if len(REPORTS) > before else None
    if report is None:
        return Outcome(meta, "passed" if code == 0 else f"exit {code}", seconds)
    figures = "; ".join(f"{f.label} = {f.formatted()}" for f in report.key_figures[:4])
    result = "passed" if code == 0 else ("invariant broken" if code == 1 else f"error (exit {code})")
    return Outcome(meta, result, seconds, figures, len(report.cloud_only), report)


def _print_summary(outcomes: list[Outcome], total: float) -> None:
    table = Table(title="Summary", title_justify="left")
    table.add_column("pattern", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("seconds", justify="right")
    table.add_column("key figures")
    table.add_column("cloud-only", justify="right")
    for o in outcomes:
        colour = "green" if o.result == "passed" else "yellow" if o.result == "not yet written" else "red"
        table.add_row(o.meta.id, f"[{colour}]{o.result}[/]", f"{o.seconds:.1f}", escape(o.figures), str(o.cloud_only))
    console.print(table)
    console.print(f"total {total:.1f} s")


def cmd_kafka(action: str, *, port: int | None = None, timeout: float = 120.0) -> int:
    """Manage the local broker; with KAFKA_BOOTSTRAP_SERVERS set, report on the configured cluster instead."""
    from expert.runtime import kafka
    from expert.runtime.config import load_settings

    settings = load_settings().kafka
    if settings.is_cloud:
        servers = settings.get("KAFKA_BOOTSTRAP_SERVERS")
        console.print(f"KAFKA_BOOTSTRAP_SERVERS is set ({escape(servers or '')}): patterns use that cluster.")
        if action != "status":
            console.print("This project starts and stops only its local broker; remove the key to use it.")
            return 0
        from confluent_kafka.admin import AdminClient

        from expert.runtime.endpoints import probe_kafka

        probe_kafka(settings)
        metadata = AdminClient(kafka.KafkaEndpoint(servers or "", settings).client_config()).list_topics(timeout=10)
        console.print(f"[green]reachable[/]: {len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s)")
        return 0
    if action == "start":
        with console.status("Starting the Kafka broker (the first start downloads its jars)…"):
            started = kafka.start_broker(port=port, timeout=timeout)
        state = started.state
        if started.already_running:
            adopted = (
                f" (left by run pid {started.adopted_from}, which exited; it now stays up until `expert kafka stop`)"
                if started.adopted_from is not None
                else ""
            )
            console.print(
                f"Kafka broker already running: pid {state.pid}, bootstrap [bold]{state.bootstrap_servers}[/]{adopted}"
            )
            return 0
        parts = [f"started in {started.start_seconds:.1f} s"]
        if started.formatted_now:
            parts.append(f"storage formatted in {started.format_seconds:.1f} s")
        if started.classpath_resolved_now:
            parts.append(f"jars resolved in {started.classpath_seconds:.1f} s")
        console.print(
            f"[green]Kafka {state.version} broker running[/]: pid {state.pid}, bootstrap "
            f"[bold]{state.bootstrap_servers}[/] ({'; '.join(parts)})\n"
            f"data {escape(state.data_dir)} · log {escape(state.log_file)} · stop it with `expert kafka stop`"
        )
        return 0
    if action == "stop":
        status = kafka.stop_broker()
        console.print(f"Kafka broker {escape(status.detail)}")
        return 0
    status = kafka.broker_status()
    colour = "green" if status.running else "yellow"
    console.print(f"Kafka broker: [{colour}]{escape(status.detail)}[/]")
    if status.running and status.state is not None:
        from confluent_kafka.admin import AdminClient

        state = status.state
        metadata = AdminClient({"bootstrap.servers": state.bootstrap_servers, "logger": kafka.client_logger()})
        topics = sorted(t for t in metadata.list_topics(timeout=10).topics if not t.startswith("__"))
        console.print(
            f"  version {state.version} · bootstrap {state.bootstrap_servers} · up {time.time() - state.started_at:.0f} s\n"
            f"  topics: {escape(', '.join(topics) or '(none)')}\n  data {escape(state.data_dir)} · log {escape(state.log_file)}"
        )
    return 0 if status.running else 3


def _add_spark_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    spark = sub.add_parser("spark", help="a local Spark Connect server or standalone cluster (127.0.0.1)")
    targets = spark.add_subparsers(dest="target", required=True)
    connect = targets.add_parser("connect-server", help="a Spark Connect server with Delta Lake")
    connect.add_argument("action", choices=("start", "stop", "status"))
    connect.add_argument("--port", type=int, default=15002, help="gRPC port on 127.0.0.1 (default 15002)")
    connect.add_argument(
        "--master", default="local[*]", help="where the server runs jobs: local[*] (default) or spark://127.0.0.1:7077"
    )
    connect.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the server (default 120)")
    cluster = targets.add_parser("cluster", help="a standalone master and one worker")
    cluster.add_argument("action", choices=("start", "stop", "status"))
    cluster.add_argument("--port", type=int, default=7077, help="master port on 127.0.0.1 (default 7077)")
    cluster.add_argument("--cores", type=int, help="cores the worker offers (default: all)")
    cluster.add_argument("--memory", default="4g", help="memory the worker offers executors (default 4g)")
    cluster.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each daemon (default 120)")


def cmd_warm(args: argparse.Namespace) -> int:
    """`expert up` / `expert down`: the local Spark Connect server every local run then uses."""
    from expert.runtime import cluster

    if args.command == "down":
        console.print(f"warm Spark server: {escape(cluster.stop_connect_server().detail)}")
        return 0
    with console.status("Starting a warm Spark server (Spark Connect with Delta, 127.0.0.1)…"):
        started = cluster.start_connect_server(port=args.port, timeout=args.timeout)
    state = started.state
    how = "already running" if started.already_running else f"started in {state.start_seconds:.1f} s"
    console.print(
        f"[green]warm Spark server {how}[/]: {state.url} (pid {state.pid}). Local runs (`expert run`, "
        "`python expert/...`) now use it and skip the JVM start; `expert down` stops it.\n"
        f"log {escape(state.log_file)}"
    )
    return 0


def cmd_spark(args: argparse.Namespace) -> int:
    """Start, stop or inspect the local Spark Connect server or standalone cluster."""
    from expert.runtime import cluster

    if args.target == "connect-server":
        if args.action == "start":
            with console.status("Starting the Spark Connect server (Delta Lake, 127.0.0.1)…"):
                started = cluster.start_connect_server(port=args.port, master=args.master, timeout=args.timeout)
            state = started.state
            how = "already running" if started.already_running else f"started in {state.start_seconds:.1f} s"
            console.print(
                f"[green]Spark Connect server {how}[/]: pid {state.pid}, [bold]{state.url}[/] (jobs run on {escape(state.master)})\n"
                f"Run a pattern over it: [bold]SPARK_REMOTE={state.url} expert run databricks/01[/]\n"
                f"log {escape(state.log_file)} · stop it with `expert spark connect-server stop`"
            )
            return 0
        if args.action == "stop":
            console.print(f"Spark Connect server: {escape(cluster.stop_connect_server().detail)}")
            return 0
        status = cluster.connect_server_status()
        console.print(f"Spark Connect server: [{'green' if status.running else 'yellow'}]{escape(status.detail)}[/]")
        if status.state is not None:
            console.print(f"  log {escape(status.state.log_file)}")
        return 0 if status.running else 3
    if args.action == "start":
        with console.status("Starting a standalone Spark master and worker (127.0.0.1)…"):
            started = cluster.start_cluster(port=args.port, cores=args.cores, memory=args.memory, timeout=args.timeout)
        for part in (started.master, started.worker):
            how = "already running" if part.already_running else f"started in {part.state.start_seconds:.1f} s"
            console.print(
                f"[green]{part.state.role} {how}[/]: pid {part.state.pid}, {part.state.url}, "
                f"web UI {part.state.web_ui} · log {escape(part.state.log_file)}"
            )
        console.print(
            f"Run the patterns on it: [bold]SPARK_MASTER={started.url} expert run all[/] · "
            "stop it with `expert spark cluster stop`"
        )
        return 0
    if args.action == "stop":
        for status in cluster.stop_cluster():
            console.print(f"Spark {status.role}: {escape(status.detail)}")
        return 0
    statuses = cluster.cluster_status()
    for status in statuses:
        colour = "green" if status.running else "yellow"
        ui = f" · web UI {status.state.web_ui}" if status.running and status.state else ""
        console.print(f"Spark {status.role}: [{colour}]{escape(status.detail)}[/]{ui}")
    return 0 if all(s.running for s in statuses) else 3


@dataclass
class Probe:
    name: str
    status: str
    detail: str
    fix: str = ""


def cmd_doctor(*, quick: bool = False) -> int:
    probes: list[Probe] = []

    def probe(name: str, fn: Callable[[], str], *, warn_only: bool = False) -> bool:
        with console.status(f"checking {name}…"):
            try:
                probes.append(Probe(name, "ok", fn()))
                return True
            except ExpertError as exc:
                probes.append(Probe(name, "warn" if warn_only else "FAIL", exc.message, exc.fix))
            except Exception as exc:
                probes.append(
                    Probe(name, "warn" if warn_only else "FAIL", f"{type(exc).__name__}: {exc}".splitlines()[0])
                )
        return False

    probe("python", _check_python)
    probe("pinned packages", _check_packages)
    java_ok = probe("java", _check_java)
    settings_ok = probe("configuration", _check_settings)
    if settings_ok:
        for name, fn in _cloud_probes():
            probe(name, fn)
    if not quick:
        if java_ok:
            probe("spark + delta", _check_spark)
        probe("local snowflake engine", _check_local_snowflake)
    if java_ok:
        probe("jvm class archive", _check_class_archive, warn_only=True)
    for tool, purpose in (
        ("chromium", "dashboard rendering test (integration/01)"),
        ("promtool", "alert rule checks (databricks/02)"),
        ("actionlint", "workflow lint (databricks/03)"),
        ("terraform", "terraform fmt (databricks/03)"),
    ):
        probe(f"tool: {tool}", lambda tool=tool, purpose=purpose: _check_tool(tool, purpose), warn_only=True)

    table = Table(title="expert doctor", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail")
    table.add_column("fix")
    colours = {"ok": "green", "warn": "yellow", "FAIL": "red"}
    for p in probes:
        table.add_row(p.name, f"[{colours[p.status]}]{p.status}[/]", escape(p.detail), escape(p.fix))
    console.print(table)
    failed = [p for p in probes if p.status == "FAIL"]
    console.print("[green]all required checks passed[/]" if not failed else f"[red]{len(failed)} check(s) failed[/]")
    return 1 if failed else 0


def _check_class_archive() -> str:
    from expert.runtime import class_archive

    path = class_archive.archive_path()
    if path is None or not class_archive.usable(path):
        raise ExpertError(
            "no usable class archive for this pyspark and Java: each local Spark start loads its classes from the jars",
            f"`make setup` builds it (~30 s, once; {class_archive.RETRY} after a failure); local Spark then starts "
            "~2 s sooner",
        )
    return f"{path} ({path.stat().st_size / 1e6:.0f} MB): local Spark JVMs map Spark's classes from it"


def _check_python() -> str:
    return f"{sys.version.split()[0]} at {sys.executable}"


def _check_packages() -> str:
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if "==" in d]
    wrong = []
    for pin in pins:
        name, version = pin.split("==")
        name = name.split("[")[0]
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong.append(f"{name} {installed} (want {version})")
    if wrong:
        raise ExpertError("; ".join(wrong), "run `make setup` to reinstall the pinned stack")
    return f"{len(pins)} direct dependencies at their pinned versions"


def _check_java() -> str:
    from expert.runtime.spark import SUPPORTED_JAVA, java_runtime

    java = java_runtime()
    if java.major not in SUPPORTED_JAVA:
        raise ExpertError(
            f"Java {java.version} at {java.executable} is not one Spark 4 is tested with",
            "install a JDK 17 or 21 and set JAVA_HOME to it",
        )
    return f"Java {java.version} ({java.executable})"


def _check_settings() -> str:
    from expert.runtime.config import load_settings

    settings = load_settings()
    return "; ".join(
        f"{s.spec.name}: {s.mode}" + (f" (from {s.source}{', host ' + s.host if s.host else ''})" if s.is_cloud else "")
        for s in settings.services()
    )


def _cloud_probes() -> list[tuple[str, Callable[[], str]]]:
    from expert.runtime.config import load_settings

    settings = load_settings()
    probes: list[tuple[str, Callable[[], str]]] = []
    if settings.snowflake.is_cloud:

        def snowflake_account() -> str:
            from expert.runtime.snowflake import connect_cloud

            conn = connect_cloud(settings.snowflake, "EXPERT", "PUBLIC")
            try:
                account, role = conn.cursor().execute("SELECT CURRENT_ACCOUNT(), CURRENT_ROLE()").fetchone()
            finally:
                conn.close()
            return f"connected to account {account} as role {role}"

        probes.append(("snowflake account", snowflake_account))
    if settings.databricks.is_cloud:

        def databricks_workspace() -> str:
            from expert.runtime.databricks import connect_workspace

            me = connect_workspace(settings.databricks).current_user.me()
            return f"connected as {me.user_name}"

        probes.append(("databricks workspace", databricks_workspace))
    probes.extend(_endpoint_probes(settings))
    return probes


def _endpoint_probes(settings: Settings) -> list[tuple[str, Callable[[], str]]]:
    """Reachability of the other configured endpoints (each answers within seconds or fails)."""
    from expert.runtime import endpoints

    def reached(check: Callable[[], None], where: str, source: str) -> Callable[[], str]:
        def run() -> str:
            check()
            return f"{where} answers (settings from {source})"

        return run

    probes: list[tuple[str, Callable[[], str]]] = []
    for name, config, check in (
        ("spark endpoint", settings.spark, lambda: endpoints.probe_spark(settings.spark)),
        ("kafka cluster", settings.kafka, lambda: endpoints.probe_kafka(settings.kafka)),
        ("mlflow tracking", settings.mlflow, lambda: endpoints.probe_mlflow(settings.mlflow, settings)),
        (
            "alert webhook",
            settings.alerts,
            lambda: endpoints.probe_http(
                _secret_value(settings.alerts, "ALERT_WEBHOOK_URL"),
                what="the alert webhook",
                setting="ALERT_WEBHOOK_URL",
            ),
        ),
    ):
        if config.is_cloud:
            probes.append((name, reached(check, config.host, config.source)))
    probes.append(("lakehouse storage", _storage_probe))
    return probes


def _secret_value(config: ServiceConfig, key: str) -> str:
    secret = config.secret(key)
    return secret.get_secret_value() if secret is not None else ""


def _storage_probe() -> str:
    from expert.runtime.endpoints import probe_storage
    from expert.runtime.redact import redact_url
    from expert.runtime.storage import storage_settings

    storage = storage_settings()
    if not storage.root:
        return "local: each run's workdir under .work/"
    probe_storage()
    endpoint = f", endpoint {redact_url(storage.s3_endpoint)} answers" if storage.s3_endpoint else ""
    return f"LAKEHOUSE_ROOT {redact_url(storage.root)}{endpoint}"


def _check_spark() -> str:
    import tempfile

    from expert.runtime.spark import get_spark

    t0 = time.perf_counter()
    spark = get_spark()
    start = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="expert-doctor-") as tmp:
        path = f"{tmp}/delta"
        spark.range(3).write.format("delta").save(path)
        spark.range(5).write.format("delta").mode("overwrite").save(path)
        old = spark.read.format("delta").option("versionAsOf", 0).load(path).count()
        new = spark.read.format("delta").load(path).count()
    if (old, new) != (3, 5):
        raise ExpertError(f"Delta time travel returned {old}/{new} rows, expected 3/5", "reinstall with `make setup`")
    return f"Spark {spark.version} started in {start:.1f} s; Delta write, overwrite and time travel ok"


def _check_local_snowflake() -> str:
    import tempfile
    from pathlib import Path

    import pandas as pd

    from expert.runtime.config import SNOWFLAKE, resolve_service
    from expert.runtime.snowflake import snowflake_session

    with (
        tempfile.TemporaryDirectory(prefix="expert-doctor-") as tmp,
        snowflake_session(resolve_service(SNOWFLAKE, {}), db_path=Path(tmp)) as session,
    ):
        session.write_pandas(pd.DataFrame({"N": [1, 2, 3]}), "DOCTOR")
        total = session.scalar("SELECT SUM(N) FROM DOCTOR")
    if int(total) != 6:
        raise ExpertError(f"local engine summed 1+2+3 to {total}", "reinstall with `make setup`")
    return f"fakesnow {importlib.metadata.version('fakesnow')} on DuckDB {importlib.metadata.version('duckdb')}: write_pandas + query ok"


def _check_tool(tool: str, purpose: str) -> str:
    local = PROJECT_ROOT / ".cache" / "bin" / tool
    path = shutil.which(tool) or (str(local) if local.is_file() else None)
    if not path:
        raise ExpertError(
            f"{tool} not found (optional: {purpose})", "`make tools` installs it; tests that need it skip without it"
        )
    return f"{path} ({purpose})"


if __name__ == "__main__":
    raise SystemExit(main())
