"""Monitoring and observability: metrics, alerts, dashboards and runbooks for a real pipeline.

Why it matters in production: the expensive failures are the quiet ones. A source stops
delivering and gold keeps showing yesterday's numbers; a producer ships a broken file and 15% of
orders vanish into quarantine. This pattern instruments the medallion pipeline of databricks/01
the way a platform team does, breaks it on purpose, and shows the alerts fire, reach an on-call
webhook, and resolve, each pointing to a runbook that says what to do.

Learning objectives:
- Collect streaming, Delta, data-quality, freshness and volume metrics from a real pipeline, and
  warehouse credits, queueing and failed queries from Snowflake's ACCOUNT_USAGE
- Expose them in Prometheus format with alert rules and a Grafana dashboard
- Let Prometheus evaluate the rules and Alertmanager deliver to a webhook; inject a fault and
  watch alerts go pending, fire and resolve

Run it:
    python expert/databricks/02_monitoring.py [--rows N]
    expert run databricks/02

Locally: PySpark + Delta Lake, prometheus_client, Prometheus and Alertmanager (Debian's
`prometheus` and `prometheus-alertmanager`, from `make tools`) on 127.0.0.1, a webhook receiver on
127.0.0.1 standing in for PagerDuty/Slack, and a generated month of ACCOUNT_USAGE in the local
Snowflake engine. The pipeline (bronze and silver; gold is databricks/01's subject) runs on a
simulated schedule: runs 10 simulated minutes apart, rules every 5, so a 20-minute outage takes
seconds; every metric value is computed from what the pipeline and the usage history really hold.
Without Prometheus installed, an in-process evaluator with its semantics stands in (said so in
the output). With credentials in .env: ALERT_WEBHOOK_URL receives the alerts, the same SQL reads
the account's ACCOUNT_USAGE, and DATABRICKS_* reads job runs and `system` tables.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import generate_latest

from expert.lakehouse import (
    BRONZE_TABLES,
    DIM_CUSTOMER,
    SILVER_EVENTS,
    SILVER_ORDERS,
    BronzeResult,
    MedallionLayout,
    SilverResult,
    land_raw,
    release_next_batch,
    run_bronze,
    run_silver,
)
from expert.lakehouse.alert_replay import (
    AlertHistory,
    await_deliveries,
    deliver_transitions,
    delivered,
    expected_deliveries,
    in_process_history,
    prometheus_history,
    replay,
)
from expert.lakehouse.delta_ops import history, table_detail
from expert.lakehouse.faults import inject_malformed, malformed_lines
from expert.lakehouse.monitoring import (
    AlertEvaluator,
    PipelineMetrics,
    Sample,
    StreamMetricsListener,
    Transition,
    WebhookReceiver,
    deliver,
    grafana_dashboard,
    json_log,
    load_rules,
    referenced_metrics,
    registry_samples,
)
from expert.lakehouse.promtool import RulesUnitTest, promtool_binary, rules_unit_test, run_promtool
from expert.lakehouse.snowflake_metrics import (
    SnowflakeMetrics,
    collect,
    generated_account_usage,
    load_account_usage,
    queued_over,
)
from expert.runtime.data import EcommerceWorld
from expert.runtime.pattern import PatternRun, run_pattern
from expert.runtime.prometheus import (
    ExpositionServer,
    alertmanager,
    prometheus,
    scaled_rules,
    seconds_to_duration,
    stack_installed,
)

if TYPE_CHECKING:
    import logging

    from pyspark.sql import SparkSession

    from expert.runtime.snowflake import SnowflakeSession

RULES_FILE = Path(__file__).resolve().parent / "observability" / "alert_rules.yml"
RUN_INTERVAL_S = 600
"""Simulated time between scheduled pipeline runs (10 minutes)."""
EVAL_INTERVAL_S = 300
"""Simulated time between rule evaluations (5 minutes, the rule group's interval)."""
SPEEDUP = 300
"""Prometheus runs the scenario this much faster than simulated time: one 5-minute evaluation every second.

Why not faster: the replay shows the next exposition right after it sees an evaluation and counts only
an evaluation more than a scrape interval (0.25 s) plus 0.1 s later. With one evaluation per second,
seeing the evaluation and showing the next exposition must take under about 0.65 s; a longer stall
would let Prometheus evaluate one exposition twice, which the `for` checks would then report as a
failure. At 2 evaluations per second that allowance would be about 0.15 s."""
SCRAPE_INTERVAL_S = 0.25
STARTS_AT = datetime(2026, 1, 1, 8, 40)
"""Simulated time 0 in the generated usage history: the 09:00 report rush on BI_WH comes 20 minutes in.
On an account, the same clock time yesterday (UTC): ACCOUNT_USAGE lags behind the present."""
USAGE_QUERIES = 6_000
"""Queries in the generated month of ACCOUNT_USAGE (the 09:00 rush does not depend on it)."""
FAULT_MALFORMED_RATE = 0.15
"""Share of extra truncated lines injected into the clickstream file of the faulty run."""
WATCHED_TABLES = (SILVER_EVENTS, SILVER_ORDERS, DIM_CUSTOMER)
NULL_COLUMNS = ("customer_id", "device", "channel")


@dataclass(frozen=True)
class ScheduledRun:
    """One scheduled pipeline run of the scenario and what upstream does before it."""

    label: str
    delivers: bool = True
    malformed_fault: bool = False


SCENARIO: tuple[ScheduledRun, ...] = (
    ScheduledRun("healthy (baseline)"),
    ScheduledRun("a producer ships a half-broken clickstream file", malformed_fault=True),
    ScheduledRun("upstream export stalls: nothing lands", delivers=False),
    ScheduledRun("still stalled", delivers=False),
    ScheduledRun("upstream back, healthy"),
)
BATCHES = sum(run.delivers for run in SCENARIO)


@dataclass
class SimClock:
    """The scenario's clock in seconds since its start (advanced explicitly, never slept)."""

    now: float = 0.0


@dataclass
class SourceHistory:
    """Per source: rows per run and when data last arrived (simulated time)."""

    rows: dict[str, list[int]] = field(default_factory=dict)
    last_data_at: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- collection


def record_freshness(metrics: PipelineMetrics, clock: SimClock, history: SourceHistory) -> None:
    """Freshness is a function of time: the gauge is computed whenever it is scraped."""
    for source in BRONZE_TABLES:
        metrics.source_freshness.labels(source).set_function(
            lambda source=source: clock.now - history.last_data_at.get(source, 0.0)
        )


def record_volume(metrics: PipelineMetrics, bronze: BronzeResult, history: SourceHistory, now: float) -> None:
    """Rows per source this run, and the ratio to the median of earlier runs that had data."""
    for source, rows in bronze.rows.items():
        earlier = [n for n in history.rows.setdefault(source, []) if n > 0]
        history.rows[source].append(rows)
        metrics.source_rows.labels(source).set(rows)
        if earlier:
            metrics.source_volume_ratio.labels(source).set(rows / statistics.median(earlier))
        if rows > 0:
            history.last_data_at[source] = now


def record_quality(
    spark: SparkSession, metrics: PipelineMetrics, layout: MedallionLayout, silver: SilverResult
) -> None:
    """Expectation counts of this run, quarantine share per table, NULL shares in silver_events."""
    for table, outcome in silver.tables.items():
        quality = outcome.quality
        if quality.rows_in == 0:
            continue
        metrics.dq_rows_checked.labels(table).inc(quality.rows_in)
        for rule, count in quality.violations.items():
            metrics.dq_violations.labels(table, rule, quality.actions[rule].value).inc(count)
        metrics.dq_failed_ratio.labels(table).set(quality.dropped / quality.rows_in)
    from pyspark.sql import functions as F

    row = (
        spark.read.format("delta")
        .load(layout.table(SILVER_EVENTS))
        .agg(F.count(F.lit(1)).alias("rows"), *[F.count_if(F.col(c).isNull()).alias(c) for c in NULL_COLUMNS])
        .first()
    )
    if row is not None and row["rows"]:
        for column in NULL_COLUMNS:
            metrics.dq_null_ratio.labels(SILVER_EVENTS, column).set(row[column] / row["rows"])


def record_delta(spark: SparkSession, metrics: PipelineMetrics, layout: MedallionLayout, seen: dict[str, int]) -> None:
    """Table size and version, and the operation metrics of every commit since the last look."""
    for table in WATCHED_TABLES:
        detail = table_detail(spark, layout.table(table))
        metrics.delta_version.labels(table).set(detail.version)
        metrics.delta_files.labels(table).set(detail.files)
        metrics.delta_bytes.labels(table).set(detail.bytes)
        if detail.version <= seen.get(table, -1):
            continue
        commits = history(spark, layout.table(table), detail.version - seen.get(table, -1))
        for commit in sorted(commits, key=lambda c: c["version"]):
            op = str(commit["operation"])
            numbers = {k: int(v) for k, v in (commit["operationMetrics"] or {}).items() if str(v).isdigit()}
            metrics.delta_commits.labels(table, op).inc()
            written = numbers.get("numTargetRowsInserted", 0) + numbers.get("numTargetRowsUpdated", 0)
            metrics.delta_rows_written.labels(table, op).inc(written or numbers.get("numOutputRows", 0))
            metrics.delta_commit_seconds.labels(table).set(numbers.get("executionTimeMs", 0) / 1000)
        seen[table] = detail.version


# ---------------------------------------------------------------------------------- steps


@dataclass
class Observation:
    """What the scenario produced: per-evaluation samples and expositions, the evaluator's alerts, run facts."""

    ticks: list[tuple[float, list[Sample]]] = field(default_factory=list)
    expositions: list[bytes] = field(default_factory=list)
    """What /metrics exposed at each evaluation (the pipeline's and Snowflake's metrics)."""
    transitions: list[Transition] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    warehouses: list[dict[str, Any]] = field(default_factory=list)
    starts_at: datetime = STARTS_AT
    injected: int = 0
    queries: int = 0
    drained: int = 0
    malformed_seen: int = 0
    quarantined_in_fault_run: int = 0


def run_scenario(
    run: PatternRun,
    layout: MedallionLayout,
    metrics: PipelineMetrics,
    listener: StreamMetricsListener,
    *,
    snowflake: SnowflakeSession,
    warehouses: SnowflakeMetrics,
    logger: logging.Logger,
) -> Observation:
    """Scheduled runs every 10 simulated minutes, evaluation every 5 (Snowflake read each time), faults on cue."""
    spark = run.spark
    clock, history, seen = SimClock(), SourceHistory(), {}
    evaluator = AlertEvaluator(load_rules(RULES_FILE))
    record_freshness(metrics, clock, history)
    observed = Observation()
    if not snowflake.is_local:
        yesterday = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)
        observed.starts_at = datetime.combine(yesterday.date(), STARTS_AT.time())
    ticks = len(SCENARIO) * RUN_INTERVAL_S // EVAL_INTERVAL_S
    for tick in range(ticks):
        clock.now = tick * EVAL_INTERVAL_S
        if clock.now % RUN_INTERVAL_S == 0:
            scheduled = SCENARIO[int(clock.now // RUN_INTERVAL_S)]
            if scheduled.malformed_fault:
                observed.injected = inject_malformed(layout, FAULT_MALFORMED_RATE, run.seed)
            delivered = release_next_batch(layout) if scheduled.delivers else []
            with run.timed() as watch:
                bronze = run_bronze(spark, layout)
                silver = run_silver(spark, layout)
            seconds = watch.seconds
            streams = [*bronze.streams.values(), *silver.streams.values()]
            observed.queries += len(streams)
            observed.drained += len(streams) if listener.wait_until_drained(s.run_id for s in streams) else 0
            record_volume(metrics, bronze, history, clock.now)
            record_quality(spark, metrics, layout, silver)
            record_delta(spark, metrics, layout, seen)
            metrics.pipeline_runs.inc()
            metrics.pipeline_run_seconds.set(seconds)
            if scheduled.malformed_fault:
                observed.malformed_seen = malformed_lines(delivered)
                observed.quarantined_in_fault_run = silver.tables[SILVER_EVENTS].quality.violations["well_formed"]
            facts = {
                "t": f"{clock.now / 60:.0f} min",
                "scheduled run": scheduled.label,
                **{f"{s} rows": n for s, n in bronze.rows.items()},
                "quarantined": sum(t.quarantined for t in silver.tables.values()),
                "seconds": round(seconds, 2),
            }
            observed.runs.append(facts)
            logger.info("pipeline_run_completed", extra={"fields": {"sim_time_s": clock.now, **facts}})
        usage = collect(warehouses, snowflake, observed.starts_at + timedelta(seconds=clock.now))
        observed.warehouses += [{"t": f"{clock.now / 60:.0f} min", **row} for row in usage if row["queued s"]]
        samples = [*metrics.samples(), *registry_samples(warehouses.registry)]
        observed.ticks.append((clock.now, samples))
        observed.expositions.append(generate_latest(metrics.registry) + generate_latest(warehouses.registry))
        transitions = evaluator.evaluate(samples, clock.now)
        for transition in transitions:
            alert = transition.alert
            logger.warning(
                f"alert_{transition.status}",
                extra={"fields": {"sim_time_s": clock.now, "alertname": alert.rule.name, "labels": alert.labels}},
            )
        observed.transitions.extend(transitions)
    return observed


def show_runs(run: PatternRun, observed: Observation, listener: StreamMetricsListener) -> None:
    """What each scheduled run did, and the Snowflake warehouses that made queries wait."""
    run.table(observed.runs, title="scheduled runs (10 simulated minutes apart)", max_rows=len(observed.runs))
    run.check(
        "the listener reported every streaming query of every run",
        observed.drained == observed.queries,
        f"{observed.drained} of {observed.queries} query runs seen to termination",
    )
    batches = [p for p in listener.progress if p["rows"] > 0]
    run.figure(
        "micro-batches observed by the listener",
        len(batches),
        how="StreamingQueryListener.onQueryProgress with rows > 0",
    )
    run.figure(
        "slowest micro-batch", max(p["seconds"] for p in batches), "s", how="progress.batchDuration, all queries"
    )
    run.table(
        observed.warehouses,
        title=f"Snowflake warehouses that queued (ACCOUNT_USAGE from {observed.starts_at:%Y-%m-%d %H:%M})",
    )


def evaluate_and_deliver(run: PatternRun, observed: Observation, out: Path, receiver: WebhookReceiver) -> AlertHistory:
    """Prometheus evaluates the repository's rules on what /metrics exposed; Alertmanager delivers them."""
    if not stack_installed() and os.environ.get("EXPERT_REQUIRE_TOOLS") != "1":
        run.stand_in(
            "Prometheus and Alertmanager (not installed: `make tools` installs prometheus, prometheus-alertmanager)",
            "the in-process evaluator, with Prometheus' `for` semantics, POSTing Alertmanager's payloads itself",
        )
        deliver_transitions(observed.transitions, receiver.url)
        return in_process_history(observed.transitions, delivered(receiver.received))
    rules = scaled_rules(RULES_FILE, out / "alert_rules.scaled.yml", SPEEDUP)
    every = seconds_to_duration(EVAL_INTERVAL_S / SPEEDUP)
    run.say(
        f"one simulated evaluation every {every}: {rules.name} is {RULES_FILE.name} with every duration / {SPEEDUP}"
    )
    with (
        ExpositionServer().running() as target,
        alertmanager(out / "alertmanager", receiver.url, group_interval=every) as manager,
        prometheus(
            out / "prometheus",
            rule_files=[rules],
            scrape_target=target.target,
            alertmanager_target=manager.target,
            scrape_interval=seconds_to_duration(SCRAPE_INTERVAL_S),
            evaluation_interval=every,
        ) as server,
    ):
        run.say(f"Prometheus on {server.url}, Alertmanager on {manager.url}, /metrics on {target.target}")
        replayed = replay(server, target, observed.expositions, scrape_interval=SCRAPE_INTERVAL_S)
        times = [at for at, _ in observed.ticks]
        history = prometheus_history(replayed.states, times, [], SPEEDUP)
        arrived = await_deliveries(lambda: delivered(receiver.received), expected_deliveries(history), timeout=30)
        history = prometheus_history(replayed.states, times, delivered(receiver.received), SPEEDUP)
    run.check(
        "Alertmanager delivered every alert Prometheus fired and resolved to the webhook",
        arrived,
        f"{len(history.delivered)} deliveries in {len(receiver.received)} webhook payloads (version 4)",
    )
    run.figure(
        "Prometheus replay", replayed.seconds, "s", how=f"{len(observed.expositions)} evaluations, start to last"
    )
    return history


def show_alerts(run: PatternRun, observed: Observation, alerts: AlertHistory, snowflake: SnowflakeSession) -> None:
    """Every alert state change, delivered or not, with its runbook; and the checks that each happened when it should."""
    rules = {r.name: r for r in load_rules(RULES_FILE)}
    runbooks = {name: rule.annotations.get("runbook_url", "") for name, rule in rules.items()}
    run.table(alerts.rows(runbooks), title=f"alert states from {alerts.producer}", max_rows=len(alerts.changes))
    fired, resolved = alerts.keys("firing", "Lakehouse"), alerts.keys("resolved", "Lakehouse")
    expected = {
        *((rule, source) for rule in ("LakehouseSourceStale", "LakehouseSourceVolumeDrop") for source in BRONZE_TABLES),
        ("LakehouseDataQualityRegression", SILVER_EVENTS),
    }
    run.check(
        "the stall and the bad file fire exactly the expected alerts", fired == expected, f"fired: {sorted(fired)}"
    )
    run.check(
        "every alert resolves once the pipeline is healthy again", resolved == expected, f"resolved: {sorted(resolved)}"
    )
    stale = ("LakehouseSourceStale", next(iter(BRONZE_TABLES)))
    pending, firing = alerts.first(stale, "pending"), alerts.first(stale, "firing")
    run.check(
        "SourceStale went through `for: 5m` pending before firing",
        pending is not None
        and firing is not None
        and pending < firing
        and alerts.pending_to_firing[stale] >= rules[stale[0]].for_seconds,
        f"pending at {(pending or 0) / 60:.0f} min, firing at {(firing or 0) / 60:.0f} min "
        f"({alerts.pending_to_firing.get(stale, 0) / 60:.1f} simulated min from active to firing)",
    )
    ends = [observed.starts_at + timedelta(seconds=t) for t, _ in observed.ticks]
    rule = rules["SnowflakeWarehouseQueueing"]
    over = queued_over(snowflake, ends, rule.threshold, consecutive=1 + int(rule.for_seconds // EVAL_INTERVAL_S))
    queueing = {("SnowflakeWarehouseQueueing", warehouse) for warehouse in over}
    snowflake_fired = alerts.keys("firing", "Snowflake")
    run.check(
        "the 09:00 report rush fires SnowflakeWarehouseQueueing for exactly the warehouses that queued, and it resolves",
        snowflake_fired == queueing
        and alerts.keys("resolved", "Snowflake") == queueing
        and (bool(queueing) or not snowflake.is_local),
        f"fired {sorted(snowflake_fired)}; over the threshold for `for` + 1 evaluations (pandas, raw rows): {sorted(queueing)}",
    )
    if alerts.producer.startswith("Prometheus"):
        evaluator = in_process_history(observed.transitions, [])
        run.check(
            "Prometheus fires and resolves the same alerts as the in-process evaluator",
            all(alerts.keys(s) == evaluator.keys(s) for s in ("firing", "resolved")),
            f"{len(alerts.keys('firing'))} fired, {len(alerts.keys('resolved'))} resolved by both",
        )
    run.check(
        "the injected malformed lines are exactly what the quality rule quarantined",
        observed.quarantined_in_fault_run == observed.malformed_seen and observed.injected > 0,
        f"{observed.injected} injected, {observed.malformed_seen} malformed lines in the file (json), "
        f"{observed.quarantined_in_fault_run} quarantined as well_formed",
    )
    run.check(
        "every rule links to a runbook that exists",
        all(
            (Path(__file__).resolve().parents[2] / r.annotations.get("runbook_url", "missing")).is_file()
            for r in rules.values()
        ),
        "docs/runbooks/*.md",
    )
    run.figure("alerts fired", len(fired), how=f"lakehouse alerts firing ({alerts.producer})", key=True)
    run.figure("Snowflake alerts fired", len(snowflake_fired), how=f"firing ({alerts.producer})")


def export(run: PatternRun, metrics: PipelineMetrics, warehouses: SnowflakeMetrics, out: Path) -> tuple[Path, str]:
    """Serve /metrics on 127.0.0.1 (scraped once here), write the textfile and the dashboard."""
    import requests
    from prometheus_client import start_http_server, write_to_textfile
    from prometheus_client.parser import text_string_to_metric_families

    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        scraped = requests.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    textfile = out / "lakehouse.prom"
    write_to_textfile(str(textfile), metrics.registry)
    # prometheus_client also exposes a `<counter>_created` timestamp per counter/histogram: not a metric of its own
    families = [f for f in text_string_to_metric_families(scraped) if not f.name.endswith("_created")]
    run.table(
        [
            {"metric": f.name, "type": f.type, "series": len({tuple(sorted(s.labels.items())) for s in f.samples})}
            for f in families
        ],
        title=f"exposed on /metrics ({len(families)} families), also written to {textfile.name}",
        max_rows=30,
    )
    run.figure("metric families exported", len(families), how="parsed from the scraped /metrics text", key=True)
    dashboard = grafana_dashboard()
    (out / "grafana_dashboard.json").write_text(json.dumps(dashboard, indent=2))
    used = set().union(*(referenced_metrics(t["expr"]) for p in dashboard["panels"] for t in p["targets"]))
    names = metrics.names() | warehouses.names()
    run.check(
        "every dashboard query reads an exported metric",
        used <= names,
        f"{len(used)} metrics in {len(dashboard['panels'])} panels",
    )
    rules_metrics = {r.metric for r in load_rules(RULES_FILE)}
    run.check("every alert rule reads an exported metric", rules_metrics <= names, ", ".join(sorted(rules_metrics)))
    return textfile, scraped


def check_logs(run: PatternRun, log_path: Path) -> None:
    """One JSON object per line, with the run and alert events a log search needs."""
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    events = {e["event"] for e in entries}
    run.table(entries[-3:], title=f"structured logs ({len(entries)} JSON lines in {log_path.name})", max_rows=3)
    run.check(
        "structured logs: one JSON object per line with run and alert events",
        {"pipeline_run_completed", "alert_firing", "alert_resolved"} <= events and all("ts" in e for e in entries),
        f"{len(entries)} lines, events {sorted(events)}",
    )


def verify_with_promtool(run: PatternRun, out: Path, textfile: Path, observed: Observation) -> None:
    """Lint the rules and the exposition, and replay our alerts through Prometheus' own engine."""
    unit_test: RulesUnitTest = rules_unit_test(
        RULES_FILE, observed.ticks, observed.transitions, EVAL_INTERVAL_S, out / "alert_rules_test.yml"
    )
    promtool = promtool_binary()
    if promtool is None:
        run.note(
            "promtool not installed (`make tools`, or apt-get install prometheus): rule and exposition lint skipped; the tests run it."
        )
        return
    commands = {
        "check rules": ("check", "rules", str(RULES_FILE)),
        "check metrics": ("check", "metrics"),
        "test rules": ("test", "rules", str(unit_test.path)),
    }
    rows = []
    for name, args in commands.items():
        stdin = textfile.read_text() if name == "check metrics" else None
        done = run_promtool(promtool, *args, stdin=stdin, cwd=out)
        output = (done.stdout + done.stderr).strip()
        rows.append({"promtool": name, "exit": done.returncode, "output": output.splitlines()[-1:]})
        run.check(f"promtool {name} passes", done.returncode == 0, output[-300:])
    run.table(rows, title="the real Prometheus tooling")
    run.say(
        f"promtool test rules replayed {unit_test.series} series and {unit_test.assertions} alert assertions "
        "through Prometheus' rule engine: the in-process evaluator agrees with it at every evaluation."
    )


JOB_RUNS_CODE = """\
from databricks.sdk import WorkspaceClient

client = WorkspaceClient()  # DATABRICKS_HOST + a token or OAuth client from the environment
for job_run in client.jobs.list_runs(limit=20):
    print(job_run.run_id, job_run.job_id, job_run.state.result_state if job_run.state else None)"""
JOB_RUN_TIMELINE_SQL = (
    "SELECT job_id, run_id, result_state, period_start_time, period_end_time "
    "FROM system.lakeflow.job_run_timeline WHERE period_start_time > now() - INTERVAL 1 DAY "
    "ORDER BY period_start_time DESC LIMIT 20"
)


def workspace_monitoring(run: PatternRun) -> None:
    """Cloud mode: job runs and system tables through databricks-sdk; locally shown, not run."""
    if not run.settings.databricks.is_cloud:
        reason = "needs a Databricks workspace (DATABRICKS_HOST + token in .env)"
        run.cloud_only_step(
            "databricks",
            JOB_RUNS_CODE,
            reason,
            kind="jobs API: recent runs",
            language="python",
            purpose="see which scheduled runs of the pipeline failed, from the Jobs API",
        )
        statement = {
            "warehouse_id": "$DATABRICKS_WAREHOUSE_ID",
            "statement": JOB_RUN_TIMELINE_SQL,
            "wait_timeout": "30s",
        }
        run.cloud_only_step(
            "databricks",
            'curl -sS -X POST "$DATABRICKS_HOST/api/2.0/sql/statements" -H "Authorization: Bearer $DATABRICKS_TOKEN" \\\n'
            f'  -H "Content-Type: application/json" -d "$(cat <<JSON\n{json.dumps(statement, indent=2)}\nJSON\n)"',
            reason,
            kind="SQL statement execution API: system.lakeflow.job_run_timeline",
            language="bash",
            purpose="run history of every job from the system tables, for a dashboard or an alert",
        )
        return
    from expert.runtime.databricks import connect_workspace

    client = connect_workspace(run.settings.databricks)
    runs = list(client.jobs.list_runs(limit=20))
    run.table(
        [{"run": r.run_id, "job": r.job_id, "state": str(r.state.result_state if r.state else "")} for r in runs],
        title="recent job runs (databricks-sdk)",
    )
    warehouse = run.settings.databricks.get("DATABRICKS_WAREHOUSE_ID")
    if not warehouse:
        run.note("set DATABRICKS_WAREHOUSE_ID to also query system.lakeflow.job_run_timeline")
        return
    response = client.statement_execution.execute_statement(
        statement=JOB_RUN_TIMELINE_SQL, warehouse_id=warehouse, wait_timeout="30s"
    )
    rows = response.result.data_array if response.result and response.result.data_array else []
    run.table(
        [dict(zip(["job", "run", "result", "start", "end"], r, strict=False)) for r in rows],
        title="system.lakeflow.job_run_timeline",
    )


# ---------------------------------------------------------------------------------- pattern


def body(run: PatternRun) -> None:
    spark = run.spark
    out = run.workdir / "observability"
    out.mkdir(parents=True, exist_ok=True)
    layout = MedallionLayout(str((run.workdir / "lake").resolve()), landing_dir=str(run.workdir / "landing"))
    metrics, warehouses = PipelineMetrics(), SnowflakeMetrics()
    listener = StreamMetricsListener(metrics)

    run.step("Instrument the pipeline and Snowflake", why="a pipeline nobody measures fails silently")
    truth = land_raw(EcommerceWorld(run.rows, seed=run.seed), layout, batches=BATCHES, release=0)
    run.say(f"{BATCHES} batches per source wait in the outbox; each scheduled run that delivers takes the next one.")
    run.say(f"{len(load_rules(RULES_FILE))} alert rules from {RULES_FILE.relative_to(RULES_FILE.parents[3])}")
    run.note(
        f"generator ground truth: {truth['events'].malformed} malformed clickstream lines before the injected fault"
    )
    spark.streams.addListener(listener)
    receiver = WebhookReceiver()
    try:
        with (
            run.snowflake() as snowflake,
            receiver.running(),
            json_log(out / "pipeline.jsonl") as logger,
        ):
            if snowflake.is_local:
                with run.stand_in(
                    "SNOWFLAKE.ACCOUNT_USAGE",
                    "a generated month of QUERY_HISTORY and WAREHOUSE_METERING_HISTORY, loaded into the local engine",
                ):
                    loaded = load_account_usage(snowflake, generated_account_usage(USAGE_QUERIES, run.seed))
                run.say(f"ACCOUNT_USAGE loaded: {loaded}; simulated time 0 is {STARTS_AT:%Y-%m-%d %H:%M}")

            run.step(
                "Run on schedule: healthy, a bad file, stalled, healthy",
                why="alerts are only proven by faults that really happen to a real pipeline",
            )
            run.stand_in(
                "a Databricks job schedule", "a simulated clock: runs 10 simulated minutes apart, rules every 5"
            )
            with run.timed() as watch:
                observed = run_scenario(
                    run, layout, metrics, listener, snowflake=snowflake, warehouses=warehouses, logger=logger
                )
            run.figure("scenario wall time", watch.seconds, "s", how=f"{len(SCENARIO)} pipeline runs + metrics")
            show_runs(run, observed, listener)

            run.step(
                "Prometheus evaluates, Alertmanager delivers",
                why="the engine that pages on-call in production must be the one that evaluated the rules here",
            )
            if not run.settings.alerts.is_cloud:
                run.stand_in(
                    "PagerDuty / Slack", "a webhook receiver on 127.0.0.1 that records Alertmanager's payloads"
                )
            alerts = evaluate_and_deliver(run, observed, out, receiver)
            if run.settings.alerts.is_cloud:
                secret = run.settings.alerts.secret("ALERT_WEBHOOK_URL")
                statuses = (
                    [deliver(secret.get_secret_value(), payload) for payload in receiver.received] if secret else []
                )
                run.check(
                    "the real webhook accepted every payload",
                    bool(statuses) and all(200 <= s < 300 for s in statuses),
                    f"{len(statuses)} POSTs",
                )

            run.step(
                "Alerts: fire, deliver, resolve", why="each alert must fire on its fault, reach on-call, and resolve"
            )
            show_alerts(run, observed, alerts, snowflake)
    finally:
        spark.streams.removeListener(listener)

    run.step("Expose: Prometheus, Grafana, logs", why="dashboards and log searches read what the pipeline exposes")
    textfile, _ = export(run, metrics, warehouses, out)
    check_logs(run, out / "pipeline.jsonl")

    run.step(
        "Verify with the real Prometheus tooling", why="the in-process evaluator is only trusted if Prometheus agrees"
    )
    verify_with_promtool(run, out, textfile, observed)

    run.step("On Databricks", why="the same questions asked of the workspace: job runs and system tables")
    workspace_monitoring(run)


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=6_000)


if __name__ == "__main__":
    raise SystemExit(main())
