"""`expert capstone check`: a minimal capstone built from real artifacts meets all ten requirements, and
typical broken capstones fail the requirement they break, with evidence that says why.

The capstone is built once for the module, in a temporary folder: a JSON landing folder streamed into
bronze (availableNow, a real checkpoint), a SQLite database copied into bronze, silver appended by one
batch run per day, gold aggregated from silver and restored after a DELETE without WHERE, an MLflow
SQLite registry with a `champion`, a two-chart plotly dashboard, prometheus_client metrics and an alert
rule, a cost report, Snowflake policies, a Mermaid diagram and runbooks. A broken capstone is a manifest
with one section pointing at a broken artifact; its other sections are left out, so only its own check
does work. The dashboard and observability checks need Chromium and promtool: without them those tests
skip (and fail under EXPERT_REQUIRE_TOOLS=1, as conftest's `require_tool` decides).

The reference capstone (`capstone/reference.toml`) is this repository's own patterns: it is checked
against what the patterns it names left in this session's work root (their runs are shared with the
pattern tests through `pattern_run`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import SERVICE_KEYS, require_tool
from expert.exercises.capstone import REFERENCE_MANIFEST, REQUIREMENTS, Outcome, check_manifest
from expert.lakehouse.delta_ops import delta_table
from expert.runtime.pattern import curriculum

EVENTS = [
    [
        {"event_id": 1, "customer_id": 10, "event_type": "view", "ts": "2024-05-01T09:00:00"},
        {"event_id": 2, "customer_id": 10, "event_type": "purchase", "ts": "2024-05-01T09:05:00"},
        {"event_id": 3, "customer_id": 11, "event_type": "view", "ts": "2024-05-01T10:00:00"},
    ],
    [
        {"event_id": 4, "customer_id": 12, "event_type": "view", "ts": "2024-05-02T08:00:00"},
        {"event_id": 5, "customer_id": 12, "event_type": "purchase", "ts": "2024-05-02T08:02:00"},
    ],
]
ORDERS = [
    (100, 10, "2024-05-01", 25.0),
    (101, 11, "2024-05-01", 40.0),
    (102, 10, "2024-05-01", None),  # no amount: silver leaves it out
    (103, 12, "2024-05-02", 15.5),
    (104, 13, "2024-05-02", 60.0),
    (105, 12, "2024-05-02", 9.0),
]
POLICIES = """
CREATE OR REPLACE MASKING POLICY email_mask AS (val STRING) RETURNS STRING ->
  CASE WHEN CURRENT_ROLE() IN ('PII_READER') THEN val ELSE '***' END;
CREATE OR REPLACE ROW ACCESS POLICY region_filter AS (region STRING) RETURNS BOOLEAN ->
  CURRENT_ROLE() = 'ADMIN' OR region = 'EU';
ALTER TABLE customers MODIFY COLUMN email SET MASKING POLICY email_mask;
ALTER TABLE orders ADD ROW ACCESS POLICY region_filter ON (region);
GRANT SELECT ON TABLE orders TO ROLE analyst;
"""
ALERT_RULES = """
groups:
  - name: capstone
    rules:
      - alert: GoldTableStale
        expr: time() - capstone_last_success_timestamp_seconds{layer="gold"} > 3600
        for: 10m
        labels: {severity: page}
        annotations: {summary: "gold has not refreshed for an hour", runbook: "runbooks/gold-stale.md"}
"""
ARCHITECTURE = """flowchart LR
  files[JSON landing folder] --> bronze_events[bronze.events]
  db[(orders database)] --> bronze_orders[bronze.orders]
  bronze_orders --> silver[silver.orders]
  silver --> gold[gold.daily_revenue]
  gold --> dashboard[dashboard]
  silver --> model[purchase_propensity@champion]
"""
RUNBOOKS = ("gold-stale", "stream-stuck", "model-drift")
PAID = [order for order in ORDERS if order[3] is not None]
DAYS = sorted({day for _, _, day, _ in ORDERS})
ROWS = {"bronze": sum(map(len, EVENTS)) + len(ORDERS), "silver": len(PAID), "gold": len(DAYS)}
"""Rows each layer holds, from the data written (bronze: events and orders)."""


@dataclass(frozen=True)
class Built:
    """The capstone's folder and the manifest sections that point at its artifacts."""

    root: Path
    sections: dict[str, dict[str, Any]]


def ingest_files(spark, root: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """Stream a JSON landing folder into bronze once (availableNow): the checkpoint records the batches."""
    landing = root / "landing" / "events"
    landing.mkdir(parents=True)
    for number, events in enumerate(EVENTS):
        (landing / f"part-{number}.json").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    table, checkpoint = root / "bronze" / "events", root / "checkpoints" / "events"
    schema = "event_id INT, customer_id INT, event_type STRING, ts TIMESTAMP"
    query = (
        spark.readStream.schema(schema)
        .json(str(landing))
        .writeStream.format("delta")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start(str(table))
    )
    query.awaitTermination()
    return table, checkpoint


def ingest_database(spark, root: Path) -> Path:  # type: ignore[no-untyped-def]
    """Copy the orders table of an operational database (SQLite) into bronze."""
    with sqlite3.connect(root / "shop.db") as database:
        database.execute("CREATE TABLE orders (order_id INT, customer_id INT, day TEXT, amount REAL)")
        database.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", ORDERS)
        rows = database.execute("SELECT order_id, customer_id, day, amount FROM orders").fetchall()
    table = root / "bronze" / "orders"
    spark.createDataFrame(rows, "order_id INT, customer_id INT, day STRING, amount DOUBLE").write.format("delta").save(
        str(table)
    )
    return table


def refine_daily(spark, bronze: Path, root: Path) -> Path:  # type: ignore[no-untyped-def]
    """The batch pipeline, run once per day: that day's orders with an amount, appended to silver."""
    silver = root / "silver" / "orders"
    orders = spark.read.format("delta").load(str(bronze))
    for day in DAYS:
        orders.where(f"day = '{day}' AND amount IS NOT NULL").write.format("delta").mode("append").save(str(silver))
    return silver


def aggregate_and_drill(spark, silver: Path, root: Path) -> Path:  # type: ignore[no-untyped-def]
    """Gold revenue per day, then a restore drill: a DELETE without WHERE, undone by RESTORE."""
    from pyspark.sql import functions as F

    gold = root / "gold" / "daily_revenue"
    daily = spark.read.format("delta").load(str(silver)).groupBy("day")
    revenue = daily.agg(F.sum("amount").alias("revenue"), F.count("*").alias("orders"))
    revenue.write.format("delta").save(str(gold))
    spark.sql(f"DELETE FROM {delta_table(str(gold))}").collect()
    spark.sql(f"RESTORE TABLE {delta_table(str(gold))} TO VERSION AS OF 0").collect()
    return gold


def deploy_model(root: Path) -> str:
    """One run with a metric, its model registered as version 1, served as `champion`; the tracking URI."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from expert.ml.tracking import mlflow_store
    from expert.runtime.config import load_settings

    features = pd.DataFrame({"amount": [amount for *_, amount in PAID]})
    labels = [int(amount > 20) for *_, amount in PAID]
    with mlflow_store(load_settings(), root / "ml") as store:
        store.client.create_registered_model(store.model_name)
        with mlflow.start_run() as run:
            model = LogisticRegression().fit(features, labels)
            mlflow.log_metric("train_accuracy", float(model.score(features, labels)))
            info = mlflow.sklearn.log_model(
                model, name="model", serialization_format="cloudpickle", pip_requirements=["scikit-learn"]
            )
        version = store.client.create_model_version(
            store.model_name, source=info.model_uri, run_id=run.info.run_id, model_id=info.model_id
        )
        store.client.set_registered_model_alias(store.model_name, "champion", version.version)
        return store.tracking_uri


def write_dashboard_page(spark, gold: Path, path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Two charts from gold: revenue and orders per day."""
    import plotly.express as px

    from expert.runtime.dashboard import write_dashboard

    daily = spark.read.format("delta").load(str(gold)).toPandas().sort_values("day")
    write_dashboard(path, [px.bar(daily, x="day", y="revenue"), px.line(daily, x="day", y="orders")], "Capstone")
    return path


def write_metrics(path: Path) -> Path:
    """The pipelines' metrics, in the exposition format prometheus_client writes."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

    registry = CollectorRegistry()
    table_rows = Gauge("capstone_table_rows", "Rows per layer", ["layer"], registry=registry)
    last_success = Gauge("capstone_last_success_timestamp_seconds", "Last run", ["layer"], registry=registry)
    runs = Counter("capstone_pipeline_runs", "Pipeline runs", ["layer"], registry=registry)
    for layer, count in ROWS.items():
        table_rows.labels(layer).set(count)
        last_success.labels(layer).set_to_current_time()
        runs.labels(layer).inc()
    path.write_bytes(generate_latest(registry))
    return path


def write_cost_report(seconds: float, path: Path) -> Path:
    """A RunReport document: the build's compute in credits (an X-Small warehouse: 1 credit an hour)."""
    from expert.runtime.report import Figure, RunReport

    report = RunReport("capstone", "Capstone build")
    report.figures.append(Figure("build compute", round(seconds / 3600, 6), "credits", "wall time x 1 credit/h"))
    report.figures.append(Figure("gold rows", ROWS["gold"], "rows"))
    path.write_text(json.dumps(report.as_dict()))
    return path


def write_runbooks(folder: Path, names: tuple[str, ...]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.md").write_text(f"# {name}\n\n## Symptom\n\nThe alert fires.\n\n## Fix\n\nRerun.\n")
    return folder


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:  # type: ignore[no-untyped-def]
    """The minimal capstone, built local-only (as conftest's `_local_only` does for each test).

    The model is trained and registered in a thread while Spark builds the tables: MLflow's first use
    of a SQLite file (its schema migrations) is Python work that overlaps the JVM's.
    """
    root = tmp_path_factory.mktemp("capstone")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXPERT_ENV_FILE", os.devnull)
        for key in SERVICE_KEYS:
            env.delenv(key, raising=False)
        env.setenv("SNOWFLAKE_HOME", str(root))
        env.setenv("DATABRICKS_CONFIG_FILE", str(root / "databrickscfg"))
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1) as pool:
            model = pool.submit(deploy_model, root)
            events, checkpoint = ingest_files(spark, root)
            orders = ingest_database(spark, root)
            silver = refine_daily(spark, orders, root)
            gold = aggregate_and_drill(spark, silver, root)
            dashboard = write_dashboard_page(spark, gold, root / "dashboard.html")
            tracking_uri = model.result()
        report = write_cost_report(time.perf_counter() - started, root / "cost.json")
        metrics = write_metrics(root / "metrics.prom")
        (root / "alerts.yml").write_text(ALERT_RULES)
        (root / "policies.sql").write_text(POLICIES)
        (root / "architecture.mmd").write_text(ARCHITECTURE)
        runbooks = write_runbooks(root / "runbooks", RUNBOOKS)
        sections = {
            "ingestion": {
                "bronze": [{"path": str(events), "source": "files"}, {"path": str(orders), "source": "database"}]
            },
            "medallion": {"bronze": [str(events), str(orders)], "silver": [str(silver)], "gold": [str(gold)]},
            "pipelines": {"streaming_checkpoint": str(checkpoint), "batch_table": str(silver)},
            "ml": {"tracking_uri": tracking_uri, "model": "purchase_propensity", "alias": "champion"},
            "dashboard": {"file": str(dashboard)},
            "observability": {"metrics": str(metrics), "alert_rules": str(root / "alerts.yml")},
            "cost": {"report": str(report)},
            "security": {"policies": str(root / "policies.sql")},
            "recovery": {"restored_table": str(gold)},
            "documentation": {"architecture": str(root / "architecture.mmd"), "runbooks": str(runbooks)},
        }
        yield Built(root, sections)


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"


def write_manifest(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    text = "".join(
        f"[{key}]\n" + "".join(f"{name} = {toml_value(v)}\n" for name, v in section.items()) + "\n"
        for key, section in sections.items()
    )
    path.write_text(text)
    return path


def batches(built: Built) -> int:
    """Micro-batches the streaming query planned (its checkpoint's offset files)."""
    return len(list((Path(built.sections["pipelines"]["streaming_checkpoint"]) / "offsets").glob("[0-9]*")))


def by_key(outcomes: list[Outcome]) -> dict[str, Outcome]:
    return {o.requirement.key: o for o in outcomes}


def test_a_minimal_capstone_meets_all_ten_requirements(built: Built, tmp_path: Path) -> None:
    require_tool("chromium")
    require_tool("promtool")
    outcomes = by_key(check_manifest(write_manifest(tmp_path / "manifest.toml", built.sections)))
    assert list(outcomes) == [r.key for r in REQUIREMENTS]
    assert all(o.passed for o in outcomes.values()), {k: o.evidence for k, o in outcomes.items() if not o.passed}
    evidence = {key: o.evidence for key, o in outcomes.items()}
    assert f"files {sum(map(len, EVENTS))}, database {len(ORDERS)}" in evidence["ingestion"]
    assert evidence["medallion"] == ", ".join(f"{layer} {rows} rows" for layer, rows in ROWS.items())
    assert f"streaming: {batches(built)} committed micro-batches" in evidence["pipelines"]
    assert f"batch: {len(DAYS)} commits (WRITE)" in evidence["pipelines"]
    assert evidence["ml"].startswith("purchase_propensity@champion → version 1") and "train_accuracy" in evidence["ml"]
    assert "2 charts drawn, no script error" in evidence["dashboard"]
    series = sum(
        len(family.samples)
        for family in text_string_to_metric_families(Path(built.sections["observability"]["metrics"]).read_text())
    )
    assert evidence["observability"] == f"{series} series and 1 alert rules, both accepted by promtool"
    assert "build compute = " in evidence["cost"] and "credits" in evidence["cost"]
    assert evidence["security"] == "1 masking policies, 1 row access policies, 1 grants, 2 policy attachments"
    assert f"RESTORE in its history of 3 commits, {len(DAYS)} rows now" in evidence["recovery"]
    assert (
        evidence["documentation"]
        == f"architecture.mmd ({ARCHITECTURE.count('-->')} edges), 3 runbooks with symptom and fix"
    )


def one_kind_of_source(built: Built, tmp_path: Path) -> dict[str, Any]:
    return {"bronze": [{**t, "source": "files"} for t in built.sections["ingestion"]["bronze"]]}


def gold_as_large_as_bronze(built: Built, tmp_path: Path) -> dict[str, Any]:
    return {**built.sections["medallion"], "gold": built.sections["medallion"]["bronze"]}


def checkpoint_without_commits(built: Built, tmp_path: Path) -> dict[str, Any]:
    """The checkpoint of a query stopped after planning its first batch, before committing it."""
    checkpoint = shutil.copytree(built.sections["pipelines"]["streaming_checkpoint"], tmp_path / "checkpoint")
    shutil.rmtree(checkpoint / "commits")
    (checkpoint / "commits").mkdir()
    return {**built.sections["pipelines"], "streaming_checkpoint": str(checkpoint)}


def alias_never_set(built: Built, tmp_path: Path) -> dict[str, Any]:
    return {**built.sections["ml"], "alias": "challenger"}


def one_chart(built: Built, tmp_path: Path) -> dict[str, Any]:
    import plotly.express as px

    page = tmp_path / "dashboard.html"
    page.write_text(px.bar(x=["a", "b"], y=[1, 2]).to_html(include_plotlyjs=True, full_html=True))
    return {"file": str(page)}


def rules_promtool_rejects(built: Built, tmp_path: Path) -> dict[str, Any]:
    rules = tmp_path / "alerts.yml"
    rules.write_text(ALERT_RULES.replace("> 3600", "> 3600)"))
    return {**built.sections["observability"], "alert_rules": str(rules)}


def no_cost_unit(built: Built, tmp_path: Path) -> dict[str, Any]:
    report = tmp_path / "cost.json"
    report.write_text(json.dumps({"figures": [{"label": "build time", "value": 12.5, "unit": "s"}]}))
    return {"report": str(report)}


def no_row_access_policy(built: Built, tmp_path: Path) -> dict[str, Any]:
    policies = tmp_path / "policies.sql"
    policies.write_text("\n".join(line for line in POLICIES.splitlines() if "ROW ACCESS" not in line.upper()))
    return {"policies": str(policies)}


def row_access_policy_that_does_not_parse(built: Built, tmp_path: Path) -> dict[str, Any]:
    policies = tmp_path / "policies.sql"
    policies.write_text(POLICIES.replace("region = 'EU';", "region IN ('EU';"))
    return {"policies": str(policies)}


def never_restored(built: Built, tmp_path: Path) -> dict[str, Any]:
    return {"restored_table": built.sections["pipelines"]["batch_table"]}


def two_runbooks(built: Built, tmp_path: Path) -> dict[str, Any]:
    return {**built.sections["documentation"], "runbooks": str(write_runbooks(tmp_path / "runbooks", RUNBOOKS[:2]))}


@dataclass(frozen=True)
class Broken:
    """A capstone with one requirement broken: the section that points at the broken artifact, and what
    the check must say (`evidence` may name {bronze}, the bronze rows, and {batches}, the stream's batches)."""

    key: str
    section: Callable[[Built, Path], dict[str, Any]]
    invariant: str
    evidence: str


BROKEN = [
    Broken("ingestion", one_kind_of_source, "at least two kinds of source", "sources named: ['files']"),
    Broken(
        "medallion",
        gold_as_large_as_bronze,
        "gold aggregates what bronze holds",
        "gold has {bronze} rows, bronze {bronze}",
    ),
    Broken(
        "pipelines",
        checkpoint_without_commits,
        "the streaming query committed micro-batches",
        "{batches} offsets, 0 commits",
    ),
    Broken("ml", alias_never_set, "the model's alias resolves", "purchase_propensity@challenger: "),
    Broken("dashboard", one_chart, "the dashboard renders at least two charts", "1 charts"),
    Broken("observability", rules_promtool_rejects, "promtool accepts the alert rules", "could not parse expression"),
    Broken(
        "cost",
        no_cost_unit,
        "the cost report has computed cost figures (credits, USD or DBU)",
        "1 figures, none in a cost unit",
    ),
    Broken(
        "security",
        no_row_access_policy,
        "masking and row access policies, applied, and grants",
        "'row access policies': 0",
    ),
    Broken("security", row_access_policy_that_does_not_parse, "the policies parse as Snowflake SQL", "Expecting )"),
    Broken(
        "recovery",
        never_restored,
        "the table was restored (a RESTORE in its history)",
        f"history: {['WRITE'] * len(DAYS)}",
    ),
    Broken(
        "documentation", two_runbooks, "at least three runbooks, each with Symptom and Fix sections", "2 of 2 complete"
    ),
]


@pytest.mark.parametrize("case", BROKEN, ids=[b.section.__name__ for b in BROKEN])
def test_a_broken_capstone_fails_the_requirement_it_breaks(built: Built, tmp_path: Path, case: Broken) -> None:
    if case.key == "dashboard":
        require_tool("chromium")
    if case.key == "observability":
        require_tool("promtool")
    manifest = write_manifest(tmp_path / "manifest.toml", {case.key: case.section(built, tmp_path)})
    outcomes = by_key(check_manifest(manifest))
    broken = outcomes.pop(case.key)
    assert not broken.passed
    assert broken.evidence.startswith(case.invariant), broken.evidence
    expected = case.evidence.format(bronze=ROWS["bronze"], batches=batches(built))
    assert expected in broken.evidence, broken.evidence
    assert all(not o.passed and "is missing from manifest.toml" in o.evidence for o in outcomes.values())


def reference_patterns() -> list[str]:
    """The patterns whose outputs `capstone/reference.toml` points at (its `${WORK}/<track>/<stem>` paths)."""
    named = set(re.findall(r"\$\{WORK\}/([a-z]+/[0-9]{2}_[a-z_]+)/", REFERENCE_MANIFEST.read_text()))
    return [m.id for m in curriculum() if f"{m.track}/{m.stem}" in named]


@pytest.mark.slow
def test_the_reference_capstone_built_by_the_patterns_meets_all_ten(pattern_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    require_tool("chromium")
    require_tool("promtool")
    patterns = reference_patterns()
    assert len(patterns) >= 5, patterns
    for pattern in patterns:
        outcome = pattern_run(pattern)
        assert outcome.exit_code == 0, (pattern, outcome.report.error)
    outcomes = by_key(check_manifest(REFERENCE_MANIFEST))
    assert all(o.passed for o in outcomes.values()), {k: o.evidence for k, o in outcomes.items() if not o.passed}
    assert "3 kinds of source" in outcomes["ingestion"].evidence
    assert "RESTORE in its history" in outcomes["recovery"].evidence

    missing = tmp_path / "removed" / "dashboard.html"
    text = REFERENCE_MANIFEST.read_text()
    dashboard = re.search(r'^file = "(.+)"$', text, re.MULTILINE)
    assert dashboard is not None
    without = tmp_path / "reference-without-dashboard.toml"
    without.write_text(text.replace(dashboard.group(0), f"file = {json.dumps(str(missing))}"))
    outcomes = by_key(check_manifest(without))
    failed = {k: o.evidence for k, o in outcomes.items() if not o.passed}
    assert list(failed) == ["dashboard"], failed
    assert failed["dashboard"] == f"dashboard exists: {missing} does not exist"
