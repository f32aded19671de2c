"""Production pipelines: a medallion architecture on Delta Lake, incremental, verified, operated.

Why it matters in production: most lakehouse incidents are not exotic. A rerun that ingests the
same files twice, a malformed line that silently vanishes, a new field nobody noticed, a gold
table that drifts from silver, a bad backfill with no way back. This pattern builds the
bronze → silver → gold pipeline Databricks teams run every day and proves each of those failure
modes is handled, against ground truth from the data generator rather than against itself.

Learning objectives:
- Ingest raw files incrementally into bronze with ingestion metadata and a rescued-data column
  (Auto Loader style: Structured Streaming, availableNow, one checkpoint per source)
- Enforce data-quality expectations (warn / drop / fail) with a quarantine table
- Deduplicate, MERGE upserts and build an SCD type 2 dimension with Change Data Feed
- Build gold aggregates incrementally from the change feed
- Operate Delta tables: OPTIMIZE with ZORDER and with liquid clustering (CLUSTER BY), skipping
  measured for both, VACUUM, history, time travel, RESTORE

Run it:
    python expert/databricks/01_production_pipelines.py [--rows N] [--batches N] [--root URI]
    expert run databricks/01

Locally: PySpark + Delta Lake in-process; tables under .work/databricks/01_production_pipelines/.
With credentials in .env: SPARK_REMOTE runs the same code on a remote Spark (Databricks Connect
speaks Spark Connect); DATABRICKS_* makes the workspace steps real (listing the Lakeflow
pipelines the Auto Loader / expectations versions would run in). The pipeline's reusable code is
the `expert.lakehouse` package; this script narrates and verifies it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from expert.lakehouse import (
    BRONZE_TABLES,
    DEFAULT_EXPECTATIONS,
    DIM_CUSTOMER,
    GOLD_DAILY_FUNNEL,
    GOLD_DAILY_SALES,
    GOLD_SPECS,
    QUARANTINE,
    SILVER_EVENTS,
    SILVER_ORDERS,
    ExpectationFailedError,
    MedallionLayout,
    MedallionResult,
    SilverTableResult,
    apply_expectations,
    land_raw,
    release_next_batch,
    run_medallion,
)
from expert.lakehouse.delta_ops import delta_table, history, table_detail, temporary_conf
from expert.lakehouse.ground_truth import (
    add_totals,
    count_rows,
    expected_scd2,
    gold_frame,
    gold_frames,
    landed_rows,
    mismatched_rows,
    recomputed,
)
from expert.lakehouse.skipping import (
    LayoutMeasurement,
    busiest_customer,
    clustering_columns,
    measure_layout,
    report_skipping,
    small_files,
    target_file_size,
)
from expert.runtime.data import DirtReport, EcommerceWorld
from expert.runtime.pattern import PatternRun, run_pattern

if TYPE_CHECKING:
    import pandas as pd

SOURCE_TABLES = {"clickstream": SILVER_EVENTS, "orders": SILVER_ORDERS, "customers": DIM_CUSTOMER}
TRUTH_KEYS = {"clickstream": "events", "orders": "orders", "customers": "customers"}
LAYOUT_KEYS = ("customer_id", "event_date")
"""The columns the selective queries filter on: the ZORDER BY columns and the liquid clustering keys."""
SMALL_FILES = 48
"""How many small files the operations table starts with (what many small appends leave behind)."""
LISTING_PARALLELISM = 4
"""VACUUM lists the table directory in a Spark job with `parallelPartitionDiscovery.parallelism`
tasks: 10,000 by default, sized for object stores, far more tasks than a local directory needs."""
OPTIMIZED_FILES = 12
"""Target file count after OPTIMIZE (its maxFileSize is set from the table size to get this many)."""

# ---------------------------------------------------------------------------------- steps


def land_files(run: PatternRun, layout: MedallionLayout, world: EcommerceWorld, batches: int) -> dict[str, DirtReport]:
    """Generate all raw batches into the outbox and deliver all but the last into landing."""
    truth = land_raw(world, layout, batches=batches, release=batches - 1)
    files = sorted(p for p in layout.landing.rglob("*") if p.is_file())
    run.table(
        [{"file": str(p.relative_to(layout.landing)), "bytes": p.stat().st_size} for p in files],
        title=f"landed {len(files)} files ({batches - 1} of {batches} batches; the last stays in the outbox)",
    )
    run.note(
        "Producers write to an outbox and rename finished files into landing: a stream never lists a half-written file."
    )
    run.table(
        [
            {
                "source": k,
                "clean rows": r.clean_rows,
                "redelivered": r.duplicates,
                "null keys": r.null_keys,
                "malformed lines": r.malformed,
            }
            for k, r in truth.items()
        ],
        title="ground truth from the generator (all batches)",
    )
    return truth


def ingest_and_refine(
    run: PatternRun, layout: MedallionLayout, totals: dict[str, SilverTableResult]
) -> MedallionResult:
    """First pipeline run: bronze streams, silver expectations + MERGE + SCD2, gold from the change feed."""
    run.stand_in("Unity Catalog tables", "path-based Delta tables under one root (delta.`<path>` in SQL)")
    run.stand_in("Auto Loader (cloudFiles)", "file-source streams, trigger(availableNow=True), a checkpoint each")
    run.stand_in("Lakeflow expectations", "expectations in foreachBatch, dropped rows to a quarantine table")
    run.stand_in(
        "incrementally refreshed materialized views",
        "gold recomputed for the days silver's change feed touched, version in a state table",
    )
    result = run_medallion(run.spark, layout)
    add_totals(totals, result)
    run.table(
        [
            {"source": s, "bronze table": BRONZE_TABLES[s], "rows ingested": r.input_rows, "micro-batches": r.batches}
            for s, r in result.bronze.streams.items()
        ],
        title="bronze: availableNow streams, one checkpoint each",
    )
    run.figure(
        "bronze ingest time (first run)",
        max(r.seconds for r in result.bronze.streams.values()),
        "s",
        how="three concurrent availableNow queries",
    )
    return result


def show_bronze_metadata(run: PatternRun, layout: MedallionLayout) -> None:
    """Ingestion metadata, rescued fields (schema drift) and corrupt lines, per landed file."""
    per_file = run.spark.sql(
        f"""SELECT regexp_extract(_source_file, '[^/]+$', 0) AS file,
                   count(*) AS rows,
                   count(_rescued_data) AS rows_with_rescued_fields,
                   count(_corrupt_record) AS corrupt_lines,
                   min(_ingested_at) AS ingested_at
            FROM {layout.sql(BRONZE_TABLES["clickstream"])} GROUP BY 1 ORDER BY 1"""
    ).toPandas()
    run.table(per_file, title="bronze_events per source file")
    drift = run.spark.sql(
        f"SELECT DISTINCT explode(map_keys(from_json(_rescued_data, 'map<string,string>'))) AS field "
        f"FROM {layout.sql(BRONZE_TABLES['clickstream'])} WHERE _rescued_data IS NOT NULL"
    ).collect()
    fields = sorted(r["field"] for r in drift)
    first_file = per_file[per_file["rows_with_rescued_fields"] > 0]["file"].min() if fields else "none"
    run.say(
        f"schema drift: field(s) {fields} not in the contract, first seen in {first_file}: kept in _rescued_data, promoted to a silver column."
    )
    run.check(
        "schema drift detected and rescued, not dropped",
        fields == ["device"] and int(per_file.iloc[0]["rows_with_rescued_fields"]) == 0,
        f"rescued fields {fields}; first file with them: {first_file}",
    )


def show_silver(run: PatternRun, result: MedallionResult) -> None:
    """Expectation outcomes per rule and action, and where the rows went."""
    rows = [
        {"table": table, "expectation": rule, "action": outcome.quality.actions[rule].value, "violations": count}
        for table, outcome in result.silver.tables.items()
        for rule, count in outcome.quality.violations.items()
    ]
    run.table(rows, title="silver expectations (first run)", max_rows=20)
    run.note("warn keeps and counts; drop quarantines with the rule name; fail stops the micro-batch before any write.")


def demonstrate_fail_expectation(run: PatternRun, layout: MedallionLayout) -> None:
    """A batch with an unknown event type must stop the update (expect_or_fail), writing nothing."""
    spark = run.spark
    version_before = table_detail(spark, layout.table(SILVER_EVENTS)).version
    from pyspark.sql import functions as F

    sample = spark.read.format("delta").load(layout.table(BRONZE_TABLES["clickstream"])).limit(200)
    poisoned = sample.withColumn("device", F.lit("mobile")).withColumn(
        "event_type", F.when(F.col("event_id") % 50 == 0, F.lit("refund")).otherwise(F.col("event_type"))
    )
    expected = poisoned.where("_corrupt_record IS NULL AND event_id IS NOT NULL AND event_type = 'refund'").count()
    try:
        apply_expectations(poisoned, SILVER_EVENTS, DEFAULT_EXPECTATIONS[SILVER_EVENTS])
        stopped, caught = False, None
    except ExpectationFailedError as exc:
        stopped, caught = True, exc
    run.say(f"a 200-row batch with {expected} 'refund' events: " + (str(caught) if caught else "was NOT stopped"))
    version_after = table_detail(spark, layout.table(SILVER_EVENTS)).version
    run.check(
        "a fail expectation stops the batch and names the rule and row count",
        stopped
        and caught is not None
        and (caught.rule, caught.rows) == ("known_event_type", expected)
        and expected > 0,
        f"rule={caught.rule if caught else None}, rows={caught.rows if caught else 0}, expected {expected}",
    )
    run.check(
        "nothing was written by the stopped batch",
        version_after == version_before,
        f"silver_events version {version_before} → {version_after}",
    )


def ingest_new_batch(
    run: PatternRun, layout: MedallionLayout, totals: dict[str, SilverTableResult]
) -> tuple[MedallionResult, dict[str, int]]:
    """Deliver one more batch and rerun: only the new files are read."""
    delivered = release_next_batch(layout)
    new_rows = landed_rows(delivered)
    result = run_medallion(run.spark, layout)
    add_totals(totals, result)
    run.table(
        [
            {
                "source": s,
                "new file": Path(p).name,
                "rows in new file": new_rows[s],
                "rows ingested now": result.bronze.rows[s],
            }
            for s, p in zip(sorted(new_rows), sorted(delivered), strict=True)
        ],
        title="second run after one more batch landed",
    )
    run.check(
        "a rerun ingests only the newly landed files",
        all(result.bronze.rows[s] == n for s, n in new_rows.items()),
        ", ".join(f"{s}: {result.bronze.rows[s]} ingested = {n} new" for s, n in new_rows.items()),
    )
    gold_rows = [
        {
            "gold table": t,
            "silver versions read": f"{f.from_version}..{f.to_version}",
            "days recomputed": f.days_recomputed,
        }
        for t, f in result.gold.flows.items()
    ]
    run.table(gold_rows, title="gold: incremental from the silver change feed")
    return result, new_rows


def verify_against_truth(
    run: PatternRun,
    layout: MedallionLayout,
    *,
    world: EcommerceWorld,
    truth: dict[str, DirtReport],
    totals: dict[str, SilverTableResult],
    batches: int,
) -> None:
    """rows in bronze = rows in silver + quarantined + duplicates removed, and each term = ground truth."""
    spark = run.spark
    rows = []
    for source, silver_table in SOURCE_TABLES.items():
        report = truth[TRUTH_KEYS[source]]
        bronze = count_rows(spark, layout, BRONZE_TABLES[source])
        quarantined = count_rows(spark, layout, QUARANTINE, f"source_table = '{silver_table}'")
        outcome = totals[silver_table]
        if source == "customers":
            silver = outcome.rows_read - outcome.quarantined
        else:
            silver = count_rows(spark, layout, silver_table)
        removed = outcome.duplicates + outcome.superseded
        rows.append(
            {
                "source": source,
                "bronze": bronze,
                "silver": silver,
                "quarantined": quarantined,
                "duplicates removed": removed,
            }
        )
        run.check(
            f"{source}: bronze = silver + quarantined + duplicates",
            bronze == silver + quarantined + removed,
            f"{bronze} = {silver} + {quarantined} + {removed}",
        )
        if source != "customers":
            expected = (report.clean_rows - report.null_keys, report.null_keys + report.malformed, report.duplicates)
            run.check(
                f"{source}: silver, quarantine and duplicates match the generator's ground truth",
                (silver, quarantined, removed) == expected,
                f"got {silver}/{quarantined}/{removed}, generator says {expected[0]}/{expected[1]}/{expected[2]}",
            )
    run.table(rows, title="where every bronze row went (all runs)")
    by_rule = spark.sql(
        f"SELECT source_table, failed_rule, count(*) AS rows FROM {layout.sql(QUARANTINE)} GROUP BY 1, 2 ORDER BY 1, 2"
    ).toPandas()
    run.table(by_rule, title="quarantine by failed rule")
    events = truth["events"]
    malformed = int(
        by_rule[(by_rule.source_table == SILVER_EVENTS) & (by_rule.failed_rule == "well_formed")]["rows"].sum()
    )
    run.check(
        "every malformed line is quarantined as well_formed",
        malformed == events.malformed,
        f"{malformed} = {events.malformed}",
    )
    versions, customers = expected_scd2(world, batches)
    dim = spark.sql(
        f"SELECT count(*) AS versions, count_if(is_current) AS current, count(DISTINCT customer_id) AS customers, "
        f"max(n) AS max_current FROM (SELECT *, sum(CAST(is_current AS INT)) OVER (PARTITION BY customer_id) AS n "
        f"FROM {layout.sql(DIM_CUSTOMER)})"
    ).first()
    assert dim is not None
    run.check(
        "SCD2: one current row per customer, versions = changes in the snapshots",
        (int(dim["versions"]), int(dim["current"]), int(dim["max_current"])) == (versions, customers, 1),
        f"{dim['versions']} versions, {dim['current']} current (pandas: {versions}, {customers})",
    )
    run.figure(
        "customer versions closed (SCD2)",
        totals[DIM_CUSTOMER].versions_closed,
        how="MERGE num_updated_rows over all snapshots",
    )


def verify_gold(run: PatternRun, layout: MedallionLayout, world: EcommerceWorld) -> dict[str, pd.DataFrame]:
    """Incremental gold = full recompute from silver = the generator's orders."""
    spark = run.spark
    frames = gold_frames(spark, layout)
    for spec in GOLD_SPECS:
        mismatches = mismatched_rows(frames[spec.table], recomputed(spark, layout, spec.table))
        run.check(f"{spec.table}: incremental = full recompute", mismatches == 0, f"{mismatches} differing rows")
    sales = frames[GOLD_DAILY_SALES]
    delivered, _ = world.deliver("orders", "order_id")
    clean = delivered.dropna(subset=["order_id"]).drop_duplicates()
    revenue, orders = float(sales["revenue"].astype(float).sum()), int(sales["orders"].sum())
    expected_revenue = round(float(clean["amount"].sum()), 2)
    run.check(
        "gold revenue and order count equal the generator's deduplicated orders",
        orders == len(clean) and abs(revenue - expected_revenue) < 0.01,
        f"{orders} orders, {revenue:,.2f} revenue (pandas: {len(clean)}, {expected_revenue:,.2f})",
    )
    funnel = frames[GOLD_DAILY_FUNNEL]
    conversion = float(funnel["purchases"].sum()) / float(funnel["views"].sum())
    run.table(sales.tail(5), title="gold_daily_sales (last 5 days)")
    run.figure("gold revenue", round(revenue, 2), "", how="sum of gold_daily_sales.revenue", key=True)
    run.figure("view → purchase conversion", round(conversion, 4), "", how="gold_daily_funnel purchases / views")
    return frames


def prove_idempotent(run: PatternRun, layout: MedallionLayout, gold_before: dict[str, pd.DataFrame]) -> None:
    """A third run with nothing new must read nothing, write nothing and leave gold identical."""
    from pyspark.testing import assertDataFrameEqual

    spark = run.spark
    versions = {
        t: table_detail(spark, layout.table(t)).version
        for t in (SILVER_EVENTS, SILVER_ORDERS, DIM_CUSTOMER, GOLD_DAILY_SALES)
    }
    result = run_medallion(spark, layout)
    after = {t: table_detail(spark, layout.table(t)).version for t in versions}
    ingested = sum(result.bronze.rows.values())
    run.figure("no-op rerun time", result.seconds, "s", how="bronze + silver + gold with no new files")
    run.check("a rerun with no new files ingests nothing", ingested == 0, f"{ingested} rows ingested")
    run.check("… commits nothing to silver or gold", after == versions, f"versions before {versions}, after {after}")
    mismatch = ""
    for table, frame in gold_frames(spark, layout).items():
        try:
            assertDataFrameEqual(frame, gold_before[table], checkRowOrder=True)
        except AssertionError as exc:
            mismatch = f"{table}: {str(exc).splitlines()[0]}"
    run.check(
        "… and gold figures are identical", not mismatch, mismatch or "every gold row compared (assertDataFrameEqual)"
    )


def zorder_and_measure(run: PatternRun, layout: MedallionLayout) -> tuple[LayoutMeasurement, LayoutMeasurement]:
    """OPTIMIZE + ZORDER a table of many small files; measure files read by a selective query."""
    spark = run.spark
    location = layout.table("ops_events")
    small_files(spark, layout.table(SILVER_EVENTS), SMALL_FILES).write.format("delta").save(location)
    customer = busiest_customer(spark, location)
    before = measure_layout(spark, location, customer, "many small files")
    target = target_file_size(before.detail, OPTIMIZED_FILES)
    with temporary_conf(spark, {"spark.databricks.delta.optimize.maxFileSize": str(target)}):
        spark.sql(f"OPTIMIZE {delta_table(location)} ZORDER BY ({', '.join(LAYOUT_KEYS)})").collect()
    after = measure_layout(spark, location, customer, f"OPTIMIZE ZORDER BY {', '.join(LAYOUT_KEYS)}")
    run.table(
        [before.row(), after.row()],
        title=f"files read by `WHERE customer_id = {customer}` (scan node SQL metric 'number of files read')",
    )
    report_skipping(run, "Z-order", before, after)
    reduction = round(before.scan.bytes_read / max(1, after.scan.bytes_read), 1)
    run.figure("bytes read reduction", reduction, "x", how="FileSourceScanExec filesSize before / after")
    run.check(
        "the selective query returns the same answer before and after",
        sorted(before.answer) == sorted(after.answer),
        f"{len(after.answer)} groups",
    )
    run.check(
        "Z-ordering lets Delta skip most files for a selective query",
        before.scan.files_read == before.detail.files and after.scan.files_read < after.detail.files / 2,
        f"before: {before.scan.files_read}/{before.detail.files} files read; after: {after.scan.files_read}/{after.detail.files}",
    )
    return before, after


def cluster_and_measure(run: PatternRun, layout: MedallionLayout, zordered: LayoutMeasurement) -> None:
    """The same rows as a liquid-clustered table: CLUSTER BY at creation, OPTIMIZE clusters, ALTER changes keys."""
    spark = run.spark
    location, keys = layout.table("ops_events_clustered"), ", ".join(LAYOUT_KEYS)
    spark.sql(
        f"CREATE TABLE {delta_table(location)} USING delta CLUSTER BY ({keys}) "
        f"AS SELECT /*+ REPARTITION({SMALL_FILES}) */ * FROM {layout.sql(SILVER_EVENTS)}"
    )
    before = measure_layout(spark, location, zordered.customer, f"CLUSTER BY ({keys}), not yet optimized")
    target = target_file_size(before.detail, OPTIMIZED_FILES)
    with temporary_conf(spark, {"spark.databricks.delta.optimize.maxFileSize": str(target)}):
        spark.sql(f"OPTIMIZE {delta_table(location)}").collect()
    after = measure_layout(spark, location, zordered.customer, "OPTIMIZE (clusters by the table's keys)")
    run.table(
        [zordered.row(), before.row(), after.row()], title="the same query on the Z-ordered and the clustered table"
    )
    report_skipping(run, "liquid clustering", before, after)
    run.check(
        "liquid clustering lets Delta skip most files for the same query, with the same answer",
        before.scan.files_read == before.detail.files
        and after.scan.files_read < after.detail.files / 2
        and sorted(after.answer) == sorted(zordered.answer),
        f"before OPTIMIZE: {before.scan.files_read}/{before.detail.files} files read; after: "
        f"{after.scan.files_read}/{after.detail.files} (Z-order: {zordered.scan.files_read}/{zordered.detail.files})",
    )
    spark.sql(f"ALTER TABLE {delta_table(location)} CLUSTER BY (event_date)")
    altered, columns = table_detail(spark, location), clustering_columns(spark, location)
    run.check(
        "ALTER TABLE … CLUSTER BY changes the keys in the table's metadata, rewriting no file",
        columns == ["event_date"]
        and altered.files == after.detail.files
        and altered.version == after.detail.version + 1,
        f"keys now {columns}; {altered.files} files before and after; version {after.detail.version} → {altered.version}",
    )
    run.note(
        "Choose ZORDER for partitioned tables or readers and writers older than Delta 3.1: its keys go with each OPTIMIZE. "
        "Choose liquid clustering for new tables: the keys live in the table, change without a rewrite, and "
        "OPTIMIZE needs no arguments; it excludes partitioning and ZORDER and needs writer version 7."
    )
    run.cloud_only_step(
        "databricks",
        "ALTER TABLE main.lake.silver_events CLUSTER BY AUTO;\nOPTIMIZE main.lake.silver_events;",
        "automatic liquid clustering needs Unity Catalog managed tables with predictive optimization",
        kind="automatic liquid clustering",
        language="sql",
        purpose="let Databricks choose and change the clustering keys from the table's query history",
    )


def vacuum(run: PatternRun, location: str, old_version: int) -> None:
    """VACUUM deletes files no longer referenced; with a short retention, old versions die too.

    The old version is probed with a sum over a column: a bare count(*) is answered from the
    Delta log's statistics without opening a data file, so it would still "work" after VACUUM.
    """
    spark = run.spark
    try:
        with temporary_conf(
            spark, {"spark.sql.sources.parallelPartitionDiscovery.parallelism": str(LISTING_PARALLELISM)}
        ):
            spark.sql(f"VACUUM {delta_table(location)} RETAIN 0 HOURS DRY RUN").collect()
        guarded = False
    except Exception as exc:
        guarded = "retention" in str(exc).lower()
    run.check(
        "Delta refuses a retention below 7 days unless told otherwise",
        guarded,
        "spark.databricks.delta.retentionDurationCheck.enabled protects readers and time travel",
    )
    quick_listing = {
        "spark.databricks.delta.retentionDurationCheck.enabled": "false",
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(LISTING_PARALLELISM),
    }
    with temporary_conf(spark, quick_listing):
        candidates = spark.sql(f"VACUUM {delta_table(location)} RETAIN 0 HOURS DRY RUN").count()
        spark.sql(f"VACUUM {delta_table(location)} RETAIN 0 HOURS").collect()
        remaining = spark.sql(f"VACUUM {delta_table(location)} RETAIN 0 HOURS DRY RUN").count()
    try:
        spark.read.format("delta").option("versionAsOf", old_version).load(location).agg({"price": "sum"}).collect()
        old_readable = True
    except Exception:
        old_readable = False
    row = {"files no longer referenced": candidates, "deleted by VACUUM": candidates - remaining}
    row[f"version {old_version} still readable"] = old_readable
    run.table([row], title="VACUUM RETAIN 0 HOURS (demo only; production keeps the 7-day default)")
    run.check(
        "VACUUM removed the small files OPTIMIZE replaced, and time travel to before it is gone",
        candidates >= SMALL_FILES and remaining == 0 and not old_readable,
        f"{candidates} files deleted; reading version {old_version} now fails",
    )


def show_history(run: PatternRun, layout: MedallionLayout) -> None:
    """DESCRIBE HISTORY: every commit of silver_events with what it did."""
    commits = history(run.spark, layout.table(SILVER_EVENTS))
    keep = ("numTargetRowsInserted", "numTargetRowsUpdated", "numOutputRows", "executionTimeMs")
    run.table(
        [
            {
                "version": c["version"],
                "operation": c["operation"],
                **{k: (c["operationMetrics"] or {}).get(k, "") for k in keep},
            }
            for c in sorted(commits, key=lambda c: c["version"])
        ],
        title="DESCRIBE HISTORY silver_events",
    )
    operations = [c["operation"] for c in sorted(commits, key=lambda c: c["version"])]
    run.check(
        "history records the table's creation and each MERGE",
        operations[0] == "CREATE TABLE" and operations.count("MERGE") >= 2,
        " → ".join(operations),
    )


def bad_write_and_restore(run: PatternRun, layout: MedallionLayout) -> None:
    """A backfill appends five days twice; time travel finds the last good version; RESTORE rolls back."""
    spark = run.spark
    location = layout.table(GOLD_DAILY_SALES)
    good = table_detail(spark, location).version
    expected = recomputed(spark, layout, GOLD_DAILY_SALES)
    spark.read.format("delta").load(location).where("order_date >= '2026-01-25'").write.format("delta").mode(
        "append"
    ).save(location)
    bad = table_detail(spark, location).version
    wrong_now = mismatched_rows(gold_frame(spark, layout, GOLD_DAILY_SALES), expected)
    wrong_then = mismatched_rows(gold_frame(spark, layout, GOLD_DAILY_SALES, version=good), expected)
    spark.sql(f"RESTORE TABLE {delta_table(location)} TO VERSION AS OF {good}").collect()
    wrong_after = mismatched_rows(gold_frame(spark, layout, GOLD_DAILY_SALES), expected)
    states = (
        (good, "last good (read with VERSION AS OF)", wrong_then),
        (bad, "after a backfill appended 5 days twice", wrong_now),
        (bad + 1, f"RESTORE TO VERSION AS OF {good}", wrong_after),
    )
    run.table(
        [{"version": v, "state": state, "rows differing from recompute": n} for v, state, n in states],
        title="gold_daily_sales: bad write, time travel, RESTORE",
    )
    last = history(spark, location, 1)[0]
    run.check(
        "time travel finds the good version and RESTORE brings it back",
        wrong_now > 0 and wrong_then == 0 and wrong_after == 0 and last["operation"] == "RESTORE",
        f"{wrong_now} bad rows → 0 after RESTORE (a new commit, version {last['version']}; history is kept)",
    )


AUTO_LOADER = """\
(spark.readStream.format("cloudFiles")
    .option("cloudFiles.format", "json")
    .option("cloudFiles.schemaLocation", "/Volumes/main/lake/_schemas/clickstream")
    .option("cloudFiles.schemaEvolutionMode", "rescue")      # unknown fields -> _rescued_data
    .option("cloudFiles.maxFilesPerTrigger", 1000)
    .load("/Volumes/main/lake/landing/clickstream")
    .select("*", "_metadata.file_path", current_timestamp().alias("_ingested_at"))
    .writeStream.option("checkpointLocation", "/Volumes/main/lake/_checkpoints/bronze_clickstream")
    .trigger(availableNow=True).toTable("main.lake.bronze_events"))"""
LAKEFLOW_EXPECTATIONS = """\
import dlt
@dlt.table(table_properties={"delta.enableChangeDataFeed": "true"})
@dlt.expect_or_drop("well_formed", "_corrupt_record IS NULL")
@dlt.expect_or_drop("event_id_present", "event_id IS NOT NULL")
@dlt.expect_or_fail("known_event_type", "event_type IN ('view', 'cart', 'purchase')")
@dlt.expect("device_reported", "device IS NOT NULL")
def silver_events(): return dlt.read_stream("bronze_events")"""


def workspace_steps(run: PatternRun) -> None:
    """What this pattern is on Databricks: Auto Loader and Lakeflow expectations."""
    if run.settings.databricks.is_cloud:
        from expert.runtime.databricks import connect_workspace

        client = connect_workspace(run.settings.databricks)
        pipelines = list(client.pipelines.list_pipelines(max_results=25))
        run.table(
            [{"pipeline": p.name, "state": str(p.state)} for p in pipelines[:10]],
            title="Lakeflow pipelines in the workspace",
        )
        run.note("Deploying this pipeline as a job/bundle is databricks/03's subject.")
        return
    reason = "cloudFiles and Lakeflow expectations run only on the Databricks runtime; locally the open-source equivalents above ran"
    run.cloud_only_step(
        "databricks",
        AUTO_LOADER,
        reason,
        kind="Auto Loader bronze ingestion",
        language="python",
        purpose="ingest the clickstream landing volume incrementally, unknown fields rescued",
    )
    run.cloud_only_step(
        "databricks",
        LAKEFLOW_EXPECTATIONS,
        reason,
        kind="Lakeflow Declarative Pipelines table with expectations",
        language="python",
        purpose="declare silver_events with the same warn / drop / fail rules as the local run",
    )


# ---------------------------------------------------------------------------------- pattern


def body(run: PatternRun) -> None:
    root = run.args.root or str((run.workdir / "lake").resolve())
    layout = MedallionLayout(root, landing_dir=str(run.workdir / "landing"))
    world = EcommerceWorld(run.rows, seed=run.seed)
    batches = int(run.args.batches)
    totals: dict[str, SilverTableResult] = {}

    run.step(
        "Land raw files from three sources",
        why="upstream systems deliver files; the pipeline never sees them half-written",
    )
    truth = land_files(run, layout, world, batches)

    run.step(
        "Bronze → silver → gold, first run",
        why="raw rows kept as delivered, then cleaned, deduplicated and aggregated, each layer incremental",
    )
    first = ingest_and_refine(run, layout, totals)
    show_bronze_metadata(run, layout)
    show_silver(run, first)
    run.figure("first pipeline run", first.seconds, "s", how="run_medallion wall time")

    run.step(
        "A fail expectation stops a bad batch", why="some defects must stop the pipeline rather than be quarantined"
    )
    demonstrate_fail_expectation(run, layout)

    run.step(
        "One more batch lands: incremental rerun", why="a scheduled run must read only what arrived since the last one"
    )
    second, _ = ingest_new_batch(run, layout, totals)
    run.figure("incremental run", second.seconds, "s", how="run_medallion wall time, one new file per source")

    run.step(
        "Verify against the generator's ground truth",
        why="every bronze row must be accounted for, against numbers the pipeline did not compute",
    )
    verify_against_truth(run, layout, world=world, truth=truth, totals=totals, batches=batches)
    gold = verify_gold(run, layout, world)

    run.step("Rerun with nothing new: idempotent", why="retries and overlapping schedules must not change any table")
    prove_idempotent(run, layout, gold)

    run.step(
        "Operate: ZORDER and liquid clustering (measured), VACUUM",
        why="many small files slow every query; co-locating rows by the filtered columns lets Delta skip files",
    )
    small_files_state, zordered = zorder_and_measure(run, layout)
    cluster_and_measure(run, layout, zordered)
    vacuum(run, small_files_state.location, small_files_state.detail.version)

    run.step(
        "Operate: history, a bad write, time travel and RESTORE",
        why="a bad backfill needs a way back that keeps the audit trail",
    )
    show_history(run, layout)
    bad_write_and_restore(run, layout)

    run.step("On Databricks", why="the same pipeline written with the runtime's own ingestion and expectations")
    workspace_steps(run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batches", type=int, default=3, help="raw batches per source (default 3, at least 2)")
    parser.add_argument("--root", default="", help="table root: a local path or a URI (default: the run's workdir)")


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=10_000, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
