"""The `expert` command: list the curriculum, run patterns in one process, check the machine.

expert list                      tracks, patterns, objectives and status
expert run [all|TRACK|TRACK/NN]  run patterns in curriculum order, one process, one SparkSession
expert doctor [--quick]          check Python, Java, Spark + Delta, the local Snowflake engine,
                                 each service's mode and credentials; each failure with its fix
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from expert import PROJECT_ROOT
from expert.runtime.errors import ExpertError
from expert.runtime.pattern import REPORTS, PatternMeta, curriculum, load_module, select_patterns, tracks

console = Console(highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="expert", description="Lakehouse Expert Patterns")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show the curriculum")
    run = sub.add_parser("run", help="run patterns in curriculum order")
    run.add_argument("selector", nargs="?", default="all", help="all, a track, or TRACK/NN (default: all)")
    run.add_argument("--quiet", action="store_true", help="show only progress and the summary")
    doctor = sub.add_parser("doctor", help="check this machine and the configuration")
    doctor.add_argument("--quick", action="store_true", help="skip starting Spark and the local engines")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args.selector, quiet=args.quiet)
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
                f"[dim]({meta.minutes} min · needs {', '.join(meta.needs)})[/]  {status}"
            )
            for objective in meta.objectives:
                console.print(f"    • {escape(objective)}")
    ready = sum(m.exists for m in curriculum())
    console.print(f"\n{ready} of {len(curriculum())} patterns ready. Run one with: expert run TRACK/NN")
    return 0


@dataclass
class Outcome:
    meta: PatternMeta
    result: str
    seconds: float
    figures: str = ""
    cloud_only: int = 0


def cmd_run(selector: str, *, quiet: bool = False) -> int:
    """Run the selected patterns in order, in this process, sharing one Spark session."""
    selected = select_patterns(selector)
    runnable = [m for m in selected if m.exists]
    outcomes: list[Outcome] = [Outcome(m, "not yet written", 0.0) for m in selected if not m.exists]
    started = time.perf_counter()
    if any("spark" in m.needs for m in runnable):
        _start_shared_spark(runnable)
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
    _print_summary(outcomes, time.perf_counter() - started)
    return 0 if all(o.result in ("passed", "not yet written") for o in outcomes) and runnable else 1


def _start_shared_spark(patterns: list[PatternMeta]) -> None:
    from expert.runtime.spark import get_spark

    features = sorted({f for m in patterns for f in m.spark_features})
    with console.status("Starting Spark (the first run downloads the Delta Lake jars)…"):
        t0 = time.perf_counter()
        get_spark(features)
    console.print(
        f"Spark ready in {time.perf_counter() - t0:.1f} s" + (f" with {', '.join(features)}" if features else "")
    )


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
    return Outcome(meta, result, seconds, figures, len(report.cloud_only))


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
    return "; ".join(f"{s.spec.name}: {s.mode}" for s in settings.services()) + f" (from {settings.source})"


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
    return probes


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
