"""`expert bench`: measure what a learner's machine does with this curriculum, honestly.

Why a command and not timed tests: a performance goal enforced by a test fails on a busy CI
machine for reasons that have nothing to do with the code. Measured figures with their method,
their spread and the machine they came from tell a reader what to expect and where time goes.

Every measurement runs in a fresh child process (a cold JVM is part of what is measured), one
after another, and writes:
- `.work/bench/results.json`: every figure with how it was measured;
- `BENCHMARKS.md`: the same as tables, with the machine's facts and the targets of issue 7.

Measured:
- Spark session start, cold (a new process to a first result, Delta jars already cached) and
  warm (`get_spark()` again in the same process: session reuse), repeated; the local Snowflake
  engine (fakesnow on DuckDB) open to a first result, repeated;
- every pattern at its default size: standalone (its own process) and inside one
  `expert run all` process (one JVM for all), from the runs' own reports;
- the medallion pipeline (bronze, silver, gold of `expert.lakehouse`) at each `--scales` size:
  seconds and rows per second per stage and the growth per 10x data, next to the same daily-sales
  aggregate computed by DuckDB from the same landed files (the single-node reference);
- Z-order skipping (databricks/01) and streaming latency and throughput (integration/02), as
  those patterns measured them in the `expert run all` process.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expert import PROJECT_ROOT
from expert.runtime.errors import ExpertError
from expert.runtime.workdir import work_root

if TYPE_CHECKING:
    from expert.exercises.catalog import Exercise

BENCH_FILE = PROJECT_ROOT / "BENCHMARKS.md"
BENCH_JSON = PROJECT_ROOT / "BENCHMARKS.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scales",
        default="1e5,1e6",
        help="generated rows for the medallion scale runs, comma-separated (default 1e5,1e6; 1e7 takes many minutes)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each start-up measurement (default 3)")
    parser.add_argument("--skip-standalone", action="store_true", help="skip running each pattern in its own process")
    parser.add_argument("--skip-patterns", action="store_true", help="skip the pattern runs (start-up and scale only)")
    parser.add_argument("--out", type=Path, default=BENCH_FILE, help=f"Markdown report (default {BENCH_FILE.name})")
    parser.add_argument(
        "--json-out", type=Path, default=BENCH_JSON, help=f"machine-readable summary (default {BENCH_JSON.name})"
    )
    parser.add_argument("--skip-exercises", action="store_true", help="skip timing the exercises' checks")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite the report and the JSON from the last run's results.json",
    )
    parser.add_argument(
        "--skip-streaming",
        action="store_true",
        help="skip the streaming sweeps (Real-time Mode at 1,000/5,000/10,000 events/s, a 20,000-record drain)",
    )


# ---------------------------------------------------------------------------------- child processes


def _child(code: str, *args: str, timeout: float = 3600) -> dict[str, Any]:
    """Run `python -c code args` in a fresh interpreter; its last stdout line is a JSON result."""
    try:
        process = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except subprocess.TimeoutExpired as expired:
        raise ExpertError(f"a benchmark child process ran over {timeout:.0f} s", "run a smaller size") from expired
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        tail = "\n".join((process.stderr or process.stdout).splitlines()[-15:])
        raise ExpertError(f"a benchmark child process failed (exit {process.returncode}):\n{tail}", "see the output")
    return dict(json.loads(lines[-1]))


SPARK_START = """
import json, time
t0 = time.perf_counter()
from expert.runtime.spark import get_spark
get_spark([]).range(1).count()
cold = time.perf_counter() - t0
t1 = time.perf_counter()
get_spark([]).range(1).count()
print(json.dumps({"cold": cold, "warm": time.perf_counter() - t1}))
"""

SNOWFLAKE_START = """
import json, sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
from expert.runtime.config import load_settings
from expert.runtime.snowflake import snowflake_session
with snowflake_session(load_settings().snowflake, db_path=Path(tempfile.mkdtemp())) as session:
    session.scalar("SELECT 1")
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

MEDALLION = """
import json, sys, tempfile, time
from pathlib import Path
rows = int(float(sys.argv[1]))
from expert.runtime.spark import get_spark
from expert.runtime.data import EcommerceWorld
from expert.lakehouse import MedallionLayout, land_raw, run_bronze, run_silver, run_gold
spark = get_spark([])
spark.range(1).count()
root = Path(tempfile.mkdtemp(prefix="bench-medallion-"))
layout = MedallionLayout.local(root / "lake")
t = time.perf_counter()
land_raw(EcommerceWorld(rows, seed=42), layout, batches=3)
result = {"rows": rows, "land": time.perf_counter() - t}
for name, step in (("bronze", run_bronze), ("silver", run_silver), ("gold", run_gold)):
    t = time.perf_counter()
    out = step(spark, layout)
    result[name] = time.perf_counter() - t
    if name == "bronze":
        result["bronze_rows"] = sum(out.rows.values())
import duckdb
orders = str(layout.landing / "orders" / "*.csv")
t = time.perf_counter()
daily = duckdb.sql(f'''
    WITH latest AS (
        SELECT * FROM read_csv_auto('{orders}', header = true)
        WHERE order_id IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY updated_at DESC) = 1)
    SELECT CAST(order_ts AS DATE) AS day, count(*) AS orders, round(sum(amount), 2) AS revenue
    FROM latest GROUP BY 1''').fetchall()
result["duckdb_gold"] = time.perf_counter() - t
result["duckdb_revenue"] = float(sum(r[2] for r in daily))
gold = spark.read.format("delta").load(layout.table("gold_daily_sales")).selectExpr("sum(revenue)").first()[0]
result["spark_revenue"] = float(gold)
print(json.dumps(result))
"""


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def measure_startup(repeat: int) -> dict[str, Any]:
    spark = [_child(SPARK_START) for _ in range(repeat)]
    snowflake = [_child(SNOWFLAKE_START)["seconds"] for _ in range(repeat)]
    from expert.runtime import class_archive

    archive = class_archive.archive_path()
    return {
        "class_archive": class_archive.usable(archive),
        "spark_cold": _spread([r["cold"] for r in spark]),
        "spark_warm": _spread([r["warm"] for r in spark]),
        "snowflake_local": _spread(snowflake),
    }


def measure_run_all(directory: Path) -> dict[str, Any]:
    """One `expert run all --quiet` process: per-pattern seconds and figures, from its JSON."""
    out = directory / "run-all.json"
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-m", "expert.cli", "run", "all", "--quiet", "--json", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if not out.is_file():
        raise ExpertError(f"`expert run all` wrote no results (exit {process.returncode})", "run it to see why")
    document = dict(json.loads(out.read_text()))
    document["process_seconds"] = time.perf_counter() - started
    document["exit_code"] = process.returncode
    return document


def measure_standalone(pattern_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each pattern as a learner runs it: `python expert/<track>/<NN_name>.py`, wall time of the process."""
    from expert.runtime.pattern import select_patterns

    results = {}
    for pattern_id in pattern_ids:
        meta = select_patterns(pattern_id)[0]
        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, str(meta.path), "--quiet"], cwd=PROJECT_ROOT, capture_output=True, check=False
        )
        results[pattern_id] = {"seconds": time.perf_counter() - started, "exit_code": process.returncode}
    return results


def _cold_check(exercise: Exercise) -> tuple[float, int]:
    """`expert check ID --file SOLUTION` in a new process: its wall time and exit code."""
    started = time.perf_counter()
    cold = subprocess.run(
        [sys.executable, "-m", "expert", "check", exercise.id, "--file", str(exercise.solution_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - started, cold.returncode


def measure_exercises(repeat: int) -> dict[str, dict[str, Any]]:
    """Each exercise's reference solution checked as a learner checks it: cold and in watch mode.

    Cold: `expert check ID --file SOLUTION` in a new process, its wall time (interpreter, imports,
    the check worker, Spark's start for a Spark exercise). Watch: one worker kept warm, the same
    check `repeat` more times after a first one; the median of those re-checks.
    """
    from expert.exercises.catalog import exercises
    from expert.exercises.runner import CheckWorker

    results: dict[str, dict[str, Any]] = {}
    for exercise in exercises():
        seconds, exit_code = _cold_check(exercise)
        results[exercise.id] = {"engine": exercise.engine, "cold_s": seconds, "cold_exit_code": exit_code}
    with CheckWorker() as worker:
        for exercise in exercises():
            worker.check(exercise, exercise.solution_path)
            rechecks = []
            for _ in range(repeat):
                watch = time.perf_counter()
                verdict = worker.check(exercise, exercise.solution_path)
                rechecks.append(time.perf_counter() - watch)
            results[exercise.id]["watch_s"] = statistics.median(rechecks)
            results[exercise.id]["watch_passed"] = verdict.passed
    return results


def measure_exercises_with_server(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each Spark exercise's cold check again, while `expert up`'s warm Spark Connect server runs.

    A new `expert check` process still starts; its Spark session is a Connect client of the server
    (`get_spark` uses it when it is up), so the JVM start is paid once, by `expert up`. The first
    check of each exercise after the server starts is the one timed: its queries are new to the JIT.
    Adds `cold_server_s` and `cold_server_exit_code` to each Spark exercise; returns the server's start.
    """
    from expert.exercises.catalog import exercises

    expert_cli = [sys.executable, "-m", "expert"]
    started = time.perf_counter()
    up = subprocess.run([*expert_cli, "up"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    server = {"up_s": time.perf_counter() - started, "up_exit_code": up.returncode}
    try:
        if up.returncode != 0:
            return server
        for exercise in exercises():
            if exercise.engine == "spark":
                seconds, exit_code = _cold_check(exercise)
                results[exercise.id] |= {"cold_server_s": seconds, "cold_server_exit_code": exit_code}
    finally:
        subprocess.run([*expert_cli, "down"], cwd=PROJECT_ROOT, capture_output=True, check=False)
    return server


STREAMING_FIGURES = {
    "microbatch_p95_ms": "produce→Delta silver p95 (steady, trigger 0 s)",
    "live_p95_ms": "produce→live p95 (Real-time Mode, beside the analytical path)",
}
"""Which of integration/02's figures BENCHMARKS.json carries, by their labels in the pattern."""

STREAMING_TIMEOUT_S = 1_800.0


def measure_streaming() -> dict[str, Any]:
    """The streaming sweeps of `expert.streaming.measure`, alone in a child process (no pattern beside them)."""
    process = subprocess.run(
        [sys.executable, "-m", "expert.streaming.measure", "realtime", "drain"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=STREAMING_TIMEOUT_S,
        check=False,
    )
    found: dict[str, Any] = {}
    for line in process.stdout.splitlines():
        if line.startswith("{"):
            found.update(json.loads(line))
    if process.returncode != 0 or not found:
        tail = "\n".join((process.stderr or process.stdout).splitlines()[-15:])
        raise ExpertError(f"the streaming sweeps failed (exit {process.returncode}):\n{tail}", "see the output")
    return found


SCALE_TIMEOUT_S = 1_800.0
"""One medallion size gets half an hour; a bigger one than the machine can take is reported as such."""


def measure_scales(scales: Sequence[int]) -> list[dict[str, Any]]:
    return [_child(MEDALLION, str(rows), timeout=SCALE_TIMEOUT_S) for rows in scales]


# ---------------------------------------------------------------------------------- report


def _commit() -> str:
    """The code measured: the checked-out commit, and whether the work tree had changes on top of it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=PROJECT_ROOT, check=False
    )
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=PROJECT_ROOT, check=False
    )
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def machine_facts() -> dict[str, str]:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr.splitlines()
    memory = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")),
        "0",
    )
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "cores": str(os.cpu_count()),
        "memory": f"{int(memory) / 1024 / 1024:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java[0] if java else "not found",
        "pyspark": version("pyspark"),
        "delta-spark": version("delta-spark"),
        "fakesnow": version("fakesnow"),
        "duckdb": version("duckdb"),
    }


def _figure(run_all: dict[str, Any], pattern_id: str, label: str) -> dict[str, Any] | None:
    for pattern in run_all.get("patterns", []):
        if pattern["id"] == pattern_id:
            return next((f for f in pattern["figures"] if f["label"] == label), None)
    return None


def _fmt(seconds: float) -> str:
    return f"{seconds:.1f}"


def render(results: dict[str, Any]) -> str:
    """BENCHMARKS.md from the results: tables, methods, targets."""
    facts = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `expert bench` (expert/bench.py) in one go on the machine below; every figure is",
        "measured by the command, in fresh child processes run one after another. Rerun it to refresh",
        "this file: numbers from another machine belong in its own copy.",
        "",
        "| machine | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in facts.items()],
        "",
    ]
    startup = results["startup"]
    lines += [
        "## Start-up",
        "",
        "| what | median s | min–max s | n | how |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    archive = (
        "Spark's classes mapped from the JVM class archive `make setup` built"
        if startup.get("class_archive")
        else "no JVM class archive (`make setup` builds one)"
    )
    for key, how in (
        (
            "spark_cold",
            f"new Python process → `get_spark()` → `range(1).count()`; Delta jars cached (no Ivy); {archive}",
        ),
        ("spark_warm", "`get_spark()` again in the same process → first result: what session reuse costs"),
        ("snowflake_local", "new process → fakesnow session on a fresh DuckDB file → `SELECT 1` (imports included)"),
    ):
        s = startup[key]
        lines.append(
            f"| {key.replace('_', ' ')} | {s['median']:.2f} | {s['min']:.2f}–{s['max']:.2f} | {s['n']} | {how} |"
        )
    lines.append("")
    run_all = results.get("run_all")
    standalone = results.get("standalone", {})
    if run_all:
        lines += [
            "## Patterns at default size",
            "",
            f"`expert run all --quiet` in one process: **{_fmt(run_all['total_seconds'])} s** in total "
            f"(Spark start {_fmt(run_all.get('spark_start_seconds') or 0)} s, once); process wall time "
            f"{_fmt(run_all['process_seconds'])} s including interpreter start and imports. Standalone: "
            "`python expert/<track>/<NN>.py --quiet`, one process per pattern, its wall time.",
            "",
            "Delta commits / MERGEs: counted from the history of every Delta table the pattern's run wrote.",
            "",
            "| pattern | result | in `run all` s | standalone s | standalone / in-run | checks | Delta commits / MERGEs |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for p in run_all["patterns"]:
            alone = standalone.get(p["id"])
            ratio = f"{alone['seconds'] / p['seconds']:.1f}x" if alone and p["seconds"] else "–"
            alone_text = (
                f"{_fmt(alone['seconds'])}" + ("" if alone["exit_code"] == 0 else f" (exit {alone['exit_code']})")
                if alone
                else "–"
            )
            lines.append(
                f"| {p['id']} | {p['result']} | {_fmt(p['seconds'])} | {alone_text} | {ratio} | "
                f"{p['checks_passed']}/{len(p['checks'])} | {_commits(p)} |"
            )
        lines.append("")
    scales = results.get("scales", [])
    if scales:
        lines += [
            "## Medallion pipeline at scale",
            "",
            "`expert.lakehouse` bronze → silver → gold on freshly generated data (three landed batches per",
            "source, one `availableNow` run per layer), one fresh process per size. Rows = generated",
            "clickstream events (orders, payments and customer snapshots scale with them); rows/s = bronze",
            "rows ingested (all sources) / stage seconds. DuckDB: the daily-sales aggregate (dedup to each",
            "order's latest version, then group by day) straight from the landed orders CSVs — the",
            "single-node reference; both revenues are shown so the comparison is of the same answer.",
            "",
            "| rows | bronze rows | land s | bronze s | silver s | gold s | pipeline s | rows/s | DuckDB gold s | revenue (Spark / DuckDB) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for s in scales:
            total = s["bronze"] + s["silver"] + s["gold"]
            lines.append(
                f"| {s['rows']:,} | {s['bronze_rows']:,} | {_fmt(s['land'])} | {_fmt(s['bronze'])} | "
                f"{_fmt(s['silver'])} | {_fmt(s['gold'])} | {_fmt(total)} | {s['bronze_rows'] / total:,.0f} | "
                f"{s['duckdb_gold']:.2f} | {s['spark_revenue']:,.2f} / {s['duckdb_revenue']:,.2f} |"
            )
        growth = [
            (b["bronze"] + b["silver"] + b["gold"]) / (a["bronze"] + a["silver"] + a["gold"])
            for a, b in itertools.pairwise(scales)
            if b["rows"] == 10 * a["rows"]
        ]
        if growth:
            lines += ["", "Pipeline time growth per 10x data: " + ", ".join(f"{g:.2f}x" for g in growth) + "."]
        lines.append("")
    for failed in results.get("scale_failures", []):
        last = failed["error"].strip().splitlines()[-1]
        lines += [f"Medallion at {failed['rows']:,} rows did not complete on this machine: `{last}`", ""]
    lines += _streaming_section(results.get("streaming", {}))
    if run_all:
        lines += ["## Figures measured by the patterns themselves (inside `expert run all`)", ""]
        lines += ["| pattern | figure | value | how |", "| --- | --- | --- | --- |"]
        for p in run_all["patterns"]:
            for f in p["figures"]:
                if f["key"] or p["id"] in ("databricks/01", "integration/02"):
                    value = f"{f['value']:,}" if isinstance(f["value"], int) else str(f["value"])
                    if isinstance(f["value"], float):
                        value = f"{f['value']:,.3g}" if abs(f["value"]) < 100 else f"{f['value']:,.0f}"
                    lines.append(f"| {p['id']} | {f['label']} | {value} {f['unit']} | {f['how']} |")
        lines.append("")
    lines += _exercise_section(results.get("exercises", {}), results.get("exercise_server"))
    lines += _targets(results)
    return "\n".join(lines) + "\n"


def _commits(pattern: dict[str, Any]) -> str:
    """`commits / merges`, or a dash for a pattern that writes no Delta table."""
    if pattern.get("delta_commits") is None:
        return "–"
    return f"{pattern['delta_commits']} / {pattern.get('delta_merges') or 0}"


def _exercise_section(exercises: dict[str, dict[str, Any]], server: dict[str, Any] | None = None) -> list[str]:
    """Every exercise's check time: cold (a new `expert check` process), cold with the warm server up, and watch."""
    if not exercises:
        return []
    lines = [
        "## Exercise checks (`expert check ID`, the reference solution)",
        "",
        "Cold: `expert check ID --file SOLUTION` in a new process, its wall time (interpreter, imports, the",
        "check worker, Spark's start for a Spark exercise). Server up: the same, for each Spark exercise, while",
        "`expert up`'s warm Spark Connect server runs (the check's session is a client of it; the first check of",
        "each exercise after the server started). Watch: the worker `expert watch` keeps warm, the median of the",
        "re-checks after a first check.",
        "",
    ]
    if server:
        lines += [f"`expert up` started the server in {server['up_s']:.1f} s (exit {server['up_exit_code']}).", ""]
    lines += [
        "| exercise | engine | cold s | cold s, server up | watch s | passed |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for eid, e in exercises.items():
        exits = [e["cold_exit_code"], e.get("cold_server_exit_code", 0)]
        passed = "yes" if not any(exits) and e.get("watch_passed") else f"no (exit {max(exits)})"
        served = f"{e['cold_server_s']:.2f}" if "cold_server_s" in e else "–"
        lines.append(f"| {eid} | {e['engine']} | {e['cold_s']:.2f} | {served} | {e['watch_s']:.2f} | {passed} |")
    return [*lines, ""]


def _within(seconds: dict[str, float], limit: float, fmt: Callable[[float], str] = "{:.2f}".format) -> str:
    """`N of M within; slowest ID T s`: how many of the timed items meet `limit`, and the slowest one."""
    slowest = max(seconds, key=lambda item: seconds[item])
    within = sum(1 for value in seconds.values() if value <= limit)
    return f"{within} of {len(seconds)} within; slowest {slowest} {fmt(seconds[slowest])} s"


def _streaming_section(sweeps: dict[str, Any]) -> list[str]:
    """The Real-time Mode sweep (the lesson's operational query alone) and the micro-batch drain."""
    if not sweeps:
        return []
    windows = {(r.get("measured_s"), r.get("warmup_s")) for r in sweeps.get("realtime", [])}
    measured, warmup = windows.pop() if len(windows) == 1 else (None, None)
    window = (
        f"for a {warmup:g} s warm-up (sent, not measured: a new query first catches up on what arrived while it "
        f"started), then {measured:g} s measured (to the producer's last paced send)"
        if measured is not None and warmup is not None
        else "after a warm-up"
    )
    lines = [
        "## Streaming, measured alone (`python -m expert.streaming.measure`)",
        "",
        "integration/02's Real-time Mode query (Kafka → parse, validate, broadcast join → live topic) fed at",
        f"each offered rate {window}; produce → live latency per event. A rate is",
        "sustained when at least 95% of it was sent and received and every event arrived; percentiles",
        "are reported only for sustained rates.",
        "",
        "| offered events/s | sent/s | live/s | events measured | missing | p50 ms | p95 ms | p99 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in sweeps.get("realtime", []):
        cells = [f"{r[k]:.1f}" if r.get(k) is not None else "not sustained" for k in ("p50_ms", "p95_ms", "p99_ms")]
        lines.append(
            f"| {r['offered_per_s']:,.0f} | {r['sent_per_s']:,.0f} | {r['live_per_s']:,.0f} | {r['measured']:,} | "
            f"{r['missing']:,} | {' | '.join(cells)} |"
        )
    drain = sweeps.get("drain")
    if drain:
        lines += ["", f"Micro-batch backlog drain (analytical path): {drain['records_per_s']:,.0f} records/s."]
    return [*lines, ""]


def _targets(results: dict[str, Any]) -> list[str]:
    """Issue 7's targets against the figures above (what is not measured here says so)."""
    rows = []
    run_all = results.get("run_all") or {}
    standalone = results.get("standalone", {})
    if standalone:
        alone = {pattern_id: r["seconds"] for pattern_id, r in standalone.items()}
        rows.append(("one pattern standalone ≤ 20 s", _within(alone, 20, _fmt)))
    if run_all:
        rows.append(("whole curriculum in one process ≤ 120 s", f"{_fmt(run_all['total_seconds'])} s"))
    zorder_before = _figure(run_all, "databricks/01", "files read before Z-order")
    zorder_after = _figure(run_all, "databricks/01", "files read after Z-order")
    if zorder_before and zorder_after:
        cut = zorder_before["value"] / max(1, zorder_after["value"])
        rows.append(
            ("Z-order cuts files read ≥ 5x", f"{cut:.1f}x ({zorder_before['value']} → {zorder_after['value']} files)")
        )
    scales = results.get("scales", [])
    big = [(a, b) for a, b in itertools.pairwise(scales) if a["rows"] >= 1_000_000 and b["rows"] == 10 * a["rows"]]
    if big:
        a, b = big[0]
        ratio = (b["bronze"] + b["silver"] + b["gold"]) / (a["bronze"] + a["silver"] + a["gold"])
        rows.append(("medallion 1e6 → 1e7 grows ≤ 10x", f"{ratio:.2f}x"))
    elif failed := [f["rows"] for f in results.get("scale_failures", [])]:
        sizes = ", ".join(f"{n:,}" for n in failed)
        rows.append(("medallion 1e6 → 1e7 grows ≤ 10x", f"not measured: the run at {sizes} rows did not complete"))
    else:
        rows.append(("medallion 1e6 → 1e7 grows ≤ 10x", "not measured in this run (pass `--scales 1e5,1e6,1e7`)"))
    lines = ["## Targets (issue 7)", "", "| target | measured here |", "| --- | --- |"]
    lines += [f"| {target} | {value} |" for target, value in rows]
    lines += [
        "| full test suite ≤ 5 min | not measured by `expert bench`: see the README (`make test`) |",
        "| streaming p95 produce → Delta ≤ 1 s at ≥ 5,000 events/s | see integration/02's figures above |",
        "",
    ]
    later = _later_targets(results)
    if later:
        lines += ["## Targets (issues 14 and 15)", "", "| target | measured here |", "| --- | --- |"]
        lines += [f"| {target} | {value} |" for target, value in later]
    return lines


def _later_targets(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The exercise-check and streaming/curriculum goals, each against the figure measured above."""
    rows = []
    exercises = results.get("exercises", {})
    for label, engines, limit in (
        ("Snowflake/Python exercise check ≤ 3 s cold", {"snowflake", "python"}, 3),
        ("Spark exercise check ≤ 20 s cold", {"spark"}, 20),
    ):
        cold = {eid: e["cold_s"] for eid, e in exercises.items() if e["engine"] in engines}
        if cold:
            rows.append((label, _within(cold, limit)))
    served = {eid: e["cold_server_s"] for eid, e in exercises.items() if "cold_server_s" in e}
    if served:
        rows.append(("Spark exercise check ≤ 20 s cold, with `expert up`'s server running", _within(served, 20)))
    if exercises:
        watch = {eid: e["watch_s"] for eid, e in exercises.items()}
        rows.append(("any exercise re-check ≤ 3 s in watch mode", _within(watch, 3)))
    sweeps = results.get("streaming", {})
    by_rate = {r["offered_per_s"]: r for r in sweeps.get("realtime", [])}
    if 5000 in by_rate:
        p95 = by_rate[5000].get("p95_ms")
        rows.append(
            (
                "Real-time Mode p95 ≤ 50 ms at 5,000 events/s (alone)",
                f"{p95:.0f} ms" if p95 is not None else "not sustained",
            )
        )
    within = [rate for rate, r in by_rate.items() if r.get("p95_ms") is not None and r["p95_ms"] <= 100]
    if by_rate:
        best = (
            f"{max(within):,} events/s (highest rate offered: {max(by_rate):,})"
            if within
            else "none of the measured rates"
        )
        rows.append(("highest rate with Real-time Mode p95 ≤ 100 ms (aim ≥ 10,000/s)", best))
    summary_ = streaming_summary(results.get("run_all") or {}, sweeps)
    if summary_["microbatch_p95_ms"] is not None:
        rows.append(
            (
                "micro-batch produce → Delta p95 ≤ 1.5 s at 100 events/s (beside the real-time lane)",
                f"{summary_['microbatch_p95_ms'] / 1000:.2f} s",
            )
        )
    if summary_["drain_records_per_s"] is not None:
        rows.append(("backlog drain ≥ 2,000 records/s", f"{summary_['drain_records_per_s']:,.0f} records/s"))
    run_all = results.get("run_all") or {}
    if run_all:
        rows.append(("`expert run all` ≤ 240 s in one process", f"{_fmt(run_all['total_seconds'])} s"))
        spark = [p for p in run_all["patterns"] if p.get("delta_commits") is not None]
        slow = [f"{p['id']} {_fmt(p['seconds'])} s" for p in spark if p["seconds"] > 40]
        rows.append(
            (
                "each Spark pattern ≤ 40 s inside `run all`",
                f"{len(spark) - len(slow)} of {len(spark)} within; over: {', '.join(slow) or 'none'}",
            )
        )
    return rows


def run_bench(args: argparse.Namespace) -> int:
    """Run every measurement in turn, then write results.json and the Markdown report."""
    from rich.console import Console

    from expert.runtime.pattern import curriculum

    console = Console(highlight=False)
    directory = work_root() / "bench"
    directory.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        return render_saved(directory / "results.json", args.out, args.json_out)
    scales = [int(float(s)) for s in str(args.scales).split(",") if s.strip()]
    results: dict[str, Any] = {"machine": machine_facts()}
    with console.status("Start-up: Spark cold/warm, local Snowflake engine…"):
        results["startup"] = measure_startup(args.repeat)
    console.print(f"start-up measured ({args.repeat}x each)")
    if not args.skip_patterns:
        with console.status("`expert run all` in one process…"):
            results["run_all"] = measure_run_all(directory)
        console.print(f"run all: {results['run_all']['total_seconds']:.1f} s")
        if not args.skip_standalone:
            ids = [m.id for m in curriculum() if m.exists]
            with console.status(f"{len(ids)} patterns, one process each…"):
                results["standalone"] = measure_standalone(ids)
            console.print("standalone runs measured")
    for rows in scales:
        with console.status(f"medallion at {rows:,} rows…"):
            try:
                results.setdefault("scales", []).extend(measure_scales([rows]))
            except ExpertError as failure:
                # One size too big for this machine must not throw away the half hour measured before it.
                results.setdefault("scale_failures", []).append({"rows": rows, "error": failure.message})
                console.print(f"medallion at {rows:,} rows FAILED: {failure.message.splitlines()[-1]}")
                continue
        console.print(f"medallion at {rows:,} rows measured")
    if not args.skip_streaming:
        with console.status("streaming: Real-time Mode rate sweep and a backlog drain…"):
            results["streaming"] = measure_streaming()
        console.print("streaming measured")
    if not args.skip_exercises:
        with console.status("every exercise's check, cold and in watch mode…"):
            results["exercises"] = measure_exercises(args.repeat)
        with console.status("the Spark exercises' checks again, with `expert up`'s warm server…"):
            results["exercise_server"] = measure_exercises_with_server(results["exercises"])
        console.print("exercise checks measured")
    (directory / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    args.out.write_text(render(results))
    args.json_out.write_text(json.dumps(summary(results), indent=2) + "\n")
    console.print(f"wrote {args.out}, {args.json_out} and {directory / 'results.json'}")
    return 0


def render_saved(saved: Path, out: Path, json_out: Path) -> int:
    """Rewrite the report and the JSON from a saved results.json (no measurement: the figures stay those of that run)."""
    if not saved.is_file():
        raise ExpertError(f"no saved results at {saved}", "run `expert bench` first (it writes that file)")
    results = json.loads(saved.read_text())
    out.write_text(render(results))
    json_out.write_text(json.dumps(summary(results), indent=2) + "\n")
    print(f"wrote {out} and {json_out} from {saved} (measured {results['machine']['date']})")
    return 0


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """BENCHMARKS.json: the headline figures, keyed for scripts (and for `minutes` in the curriculum)."""
    run_all = results.get("run_all") or {}
    standalone = results.get("standalone", {})
    in_run = {p["id"]: p for p in run_all.get("patterns", [])}
    patterns = {
        pattern_id: {
            "seconds": round(standalone[pattern_id]["seconds"], 2) if pattern_id in standalone else None,
            "seconds_in_run_all": round(p["seconds"], 2),
            "result": p["result"],
            "delta_commits": p.get("delta_commits"),
            "delta_merges": p.get("delta_merges"),
        }
        for pattern_id, p in in_run.items()
    }
    exercises = results.get("exercises", {})
    return {
        "machine": results["machine"],
        "spark_cold_start_s": round(results["startup"]["spark_cold"]["median"], 2),
        "spark_warm_start_s": round(results["startup"]["spark_warm"]["median"], 3),
        "snowflake_local_start_s": round(results["startup"]["snowflake_local"]["median"], 2),
        "run_all_s": round(run_all["total_seconds"], 1) if run_all else None,
        "patterns": patterns,
        **streaming_summary(run_all, results.get("streaming", {})),
        "exercises": {
            eid: {k: round(v, 2) if isinstance(v, float) else v for k, v in e.items()} for eid, e in exercises.items()
        },
        "warm_server_up_s": round(server["up_s"], 1) if (server := results.get("exercise_server")) else None,
    }


def streaming_summary(run_all: dict[str, Any], sweeps: dict[str, Any]) -> dict[str, Any]:
    """integration/02's latency as the pattern measured it inside `expert run all` (both lanes side by
    side), and the sweeps measured alone: Real-time Mode per offered rate, the backlog drain rate."""
    pattern = next((p for p in run_all.get("patterns", []) if p["id"] == "integration/02"), None)
    figures = {f["label"]: f for f in pattern["figures"]} if pattern else {}

    def value(label: str) -> float | None:
        figure = figures.get(label)
        return figure["value"] if figure and isinstance(figure["value"], int | float) else None

    drain = sweeps.get("drain") or {}
    return {
        "microbatch_p95_ms": value(STREAMING_FIGURES["microbatch_p95_ms"]),
        "live_p95_ms_beside_analytical": value(STREAMING_FIGURES["live_p95_ms"]),
        "realtime_alone": sweeps.get("realtime", []),
        "drain_records_per_s": drain.get("records_per_s"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="expert bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_bench(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
