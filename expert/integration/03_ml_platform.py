"""ML platform: feature store, training, registry, serving, A/B tests, drift and automated retraining.

Why it matters in production: most ML failures are platform failures, not modelling failures.
A training set that joins the latest feature values leaks the future and looks brilliant until
launch; a model nobody can trace to its run cannot be rolled back; a better offline AUC is not a
business win until an experiment says so; and a model trained last month quietly degrades when
the traffic changes. This pattern runs the whole loop for a purchase-propensity model, for real.

Learning objectives:
- Build point-in-time-correct training sets from Delta feature tables (primary key + timestamp)
  with an as-of join, and measure what a naive latest-value join would have leaked.
- Pattern B: Snowflake stores the training data, Spark reads it back from there, scikit-learn
  learns from it, and the scores Spark computes are written back to Snowflake and queried there.
- Train a baseline and a small automated search (cross-validated), evaluate on a later period,
  track everything in MLflow and manage versions with `champion` / `challenger` aliases.
- Serve the same model version as a Spark UDF (batch) and as a JSON endpoint (online) and prove
  they agree.
- Run a hash-split A/B test with a two-proportion z-test; promote only when significant; roll back.
- Detect feature drift (PSI), retrain automatically, register the new version and re-run the gate.

Run it:
    python expert/integration/03_ml_platform.py [--rows 120000]
    expert run integration/03

Spark does the work that grows with the data (feature jobs, the as-of join, batch scoring); the
model is a scikit-learn pipeline trained on the point-in-time set (a few thousand rows). Locally:
Spark + Delta, fakesnow, MLflow on SQLite, MLflow's scoring app on 127.0.0.1. With credentials in
.env: training data and scores in your Snowflake account, runs and models in your MLflow server or
Databricks workspace (`MLFLOW_TRACKING_URI=databricks`, `MLFLOW_REGISTRY_URI=databricks-uc`); Unity
Catalog feature tables and Model Serving endpoints are shown as definitions (cloud-plan.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from expert.interop.transfer import rows_differing
from expert.lakehouse.delta_ops import delta_table
from expert.ml import features, stats, training
from expert.ml.campaign import campaign_traffic
from expert.ml.experiment import AbResult, ExperimentDesign, run_experiment
from expert.ml.registry import alias_map, alias_version, registry_table, score_version, serves_version
from expert.ml.serving import ModelEndpoint, endpoint_scores, model_serving_request, spark_udf_scores
from expert.ml.split import assignment_survives_restart
from expert.ml.tracking import KNOWN_WARNINGS, MlflowStore, file_store_refusal, mlflow_store
from expert.runtime.data import EcommerceWorld
from expert.runtime.errors import ExpertError
from expert.runtime.pattern import PatternRun, run_pattern

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from expert.runtime.snowflake import SnowflakeSession

MIN_ROWS = 20_000
"""Below ~500 customers the experiments cannot detect anything; refuse rather than mislead."""

# The timeline, in days since the world's EPOCH. Labels need 7 days to mature, so a model
# deployed on day 14 can only learn from scoring moments on day 7, and the retrain that drift
# triggers on day 21 must wait until day 29 for the labels of day 21.
TRAIN_DAY = 7
DEPLOY_DAY = 14
MONITOR_DAY = 21
RETRAIN_DAY = 29
LABEL_HORIZON = timedelta(days=7)

# The shift: from DEPLOY_DAY, a display campaign sends extra view-only traffic to part of the
# customer base (expert/ml/campaign.py). It changes what the features look like, not who buys.
CAMPAIGN_SHARE = 0.4
CAMPAIGN_VIEWS_PER_DAY = 3.0

ACTIVITY_COLUMNS = {"views_7d": "INT", "carts_7d": "INT", "purchases_7d": "INT", "spend_7d": "DOUBLE",
                    "active_days_7d": "INT", "cart_rate_7d": "DOUBLE", "days_since_last_event": "DOUBLE"}  # fmt: skip
"""customer_activity's value columns and their Delta types: the 7 days before each snapshot."""
NUMERIC_FEATURES = (*ACTIVITY_COLUMNS, "age_years")
CATEGORICAL_FEATURES = ("segment",)
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
INPUTS = training.ModelInputs(NUMERIC_FEATURES, CATEGORICAL_FEATURES)
RECENCY_CAP_DAYS = 7.0
"""Recency is measured within the feature window: 7.0 means no activity in the last 7 days."""

# The experiment: each arm's model picks the top TARGET_FRACTION of its customers for an offer;
# a targeted customer converts with probability sigmoid(OFFER_INTERCEPT + OFFER_SLOPE * propensity),
# the simulated response to the offer, drawn from the generator's hidden propensity (truth known).
TARGET_FRACTION = 0.3
OFFER_INTERCEPT = -1.0
OFFER_SLOPE = 1.0
ALPHA = 0.05
CV_FOLDS = 4
PSI_THRESHOLD = 0.25
REQUEST_BATCH = 500

CHAMPION = "champion"
CHALLENGER = "challenger"
DESIGN = ExperimentDesign(FEATURES, TARGET_FRACTION, OFFER_INTERCEPT, OFFER_SLOPE, ALPHA, REQUEST_BATCH)
"""The experiment as the two A/B gates run it (expert/ml/experiment.py)."""

SCORES_DDL = """CREATE TABLE IF NOT EXISTS PROPENSITY_SCORES (CUSTOMER_ID NUMBER NOT NULL, SEGMENT VARCHAR,
    MODEL_NAME VARCHAR, MODEL_VERSION VARCHAR, SCORE FLOAT, SCORED_AT TIMESTAMP_NTZ)"""
TARGET_LIST_SQL = """WITH RANKED AS (
    SELECT SEGMENT, SCORE, COUNT(*) OVER () AS N,
           ROW_NUMBER() OVER (ORDER BY SCORE DESC, CUSTOMER_ID) AS POSITION
    FROM PROPENSITY_SCORES WHERE MODEL_VERSION = %s AND SCORED_AT = %s
)
SELECT SEGMENT, COUNT_IF(POSITION <= CEIL(N * %s)) AS TARGETED, COUNT(*) AS CUSTOMERS,
       ROUND(AVG(SCORE), 4) AS MEAN_SCORE
FROM RANKED GROUP BY SEGMENT ORDER BY SEGMENT"""
"""The campaign list, computed where the scores live: the top TARGET_FRACTION by score, per segment."""

FEATURE_ENGINEERING = """\
spark.sql("ALTER TABLE main.feature_store.customer_activity "
          "ADD CONSTRAINT customer_activity_pk PRIMARY KEY (customer_id, feature_ts TIMESERIES)")
from databricks.feature_engineering import FeatureEngineeringClient, FeatureLookup
training_set = FeatureEngineeringClient().create_training_set(df=spine, label="label", feature_lookups=[
    FeatureLookup("main.feature_store.customer_activity", lookup_key="customer_id", timestamp_lookup_key="label_ts"),
    FeatureLookup("main.feature_store.customer_profile", lookup_key="customer_id", timestamp_lookup_key="label_ts"),
])"""
"""The same point-in-time join with Unity Catalog feature tables (Databricks Feature Engineering)."""


@dataclass(frozen=True)
class Lake:
    """Where this run's Delta feature tables live (path-based: a run owns its tables)."""

    activity: str
    profile: str


@dataclass(frozen=True)
class Scene:
    """What every step shares: the engine, the tables, the world and its events."""

    spark: SparkSession
    lake: Lake
    world: EcommerceWorld
    raw: pd.DataFrame
    events: DataFrame
    customers: DataFrame
    profile: pd.DataFrame
    plan: training.Plan


def load_world(run: PatternRun) -> Scene:
    """Step 1: the generator's customers and clickstream, plus the campaign traffic from DEPLOY_DAY."""
    run.step("The world: customers, clickstream, and a campaign the model has never seen", why="data with known truth")
    spark = run.spark
    world = EcommerceWorld(run.rows, seed=run.seed)
    campaign = campaign_traffic(world, start_day=DEPLOY_DAY, share=CAMPAIGN_SHARE, views_per_day=CAMPAIGN_VIEWS_PER_DAY)
    raw = pd.concat([world.events, campaign], ignore_index=True)
    local = raw[["customer_id", "event_type", "price", "event_ts"]].assign(event_ts=raw["event_ts"].dt.tz_convert(None))
    events = spark.createDataFrame(local).cache()
    lake = Lake(*(str(run.workdir / "lake" / "feature_store" / n) for n in ("customer_activity", "customer_profile")))
    inputs = {
        "customers": len(world.customers),
        "clickstream events (generator)": len(world.events),
        f"campaign view events from day {DEPLOY_DAY}": len(campaign),
        "customers the campaign reaches": campaign["customer_id"].nunique(),
    }
    run.table([{"input": k, "rows": n} for k, n in inputs.items()], title="Inputs (one seeded generator)")
    run.check(
        "events in Spark = generator events + campaign events",
        events.count() == len(world.events) + len(campaign),
        f"{len(world.events):,} + {len(campaign):,}",
    )
    run.note(
        f"Timeline: learn from scoring moments of day {TRAIN_DAY}, deploy on day {DEPLOY_DAY}, monitor on day "
        f"{MONITOR_DAY}, retrain on day {RETRAIN_DAY}: labels need {LABEL_HORIZON.days} days to mature."
    )
    customers = spark.createDataFrame(world.customers[["customer_id"]])
    plan = training.Plan(INPUTS, run.seed, CV_FOLDS, TARGET_FRACTION)
    return Scene(spark, lake, world, raw, events, customers, features.profile_features(world), plan)


def create_feature_tables(spark: SparkSession, lake: Lake) -> None:
    """Declare both feature tables; Delta enforces the NOT NULL key columns on every write."""
    values = ", ".join(f"{name} {kind} NOT NULL" for name, kind in ACTIVITY_COLUMNS.items())
    spark.sql(
        f"CREATE TABLE {delta_table(lake.activity)} (customer_id BIGINT NOT NULL, feature_ts TIMESTAMP NOT NULL, {values}) "
        "USING DELTA COMMENT 'Customer activity in the 7 days before feature_ts; key (customer_id, feature_ts)'"
    )
    spark.sql(
        f"CREATE TABLE {delta_table(lake.profile)} (customer_id BIGINT NOT NULL, feature_ts TIMESTAMP NOT NULL, "
        "segment STRING NOT NULL, age_years INT NOT NULL) "
        "USING DELTA COMMENT 'Customer profile known from signup; key (customer_id, feature_ts)'"
    )


def snapshots(scene: Scene, first_day: int, last_day: int) -> DataFrame:
    """The daily feature job's output for days `first_day..last_day` (expert/ml/features.py)."""
    return features.activity_snapshots(
        scene.events, scene.customers, first_day, last_day, recency_cap_days=RECENCY_CAP_DAYS
    )


def build_feature_store(run: PatternRun, scene: Scene) -> None:
    """Step 2: daily activity snapshots and profiles as Delta feature tables; the daily job is a MERGE."""
    run.step("Feature store: Delta feature tables keyed by (customer_id, feature_ts)", why="features with a time key")
    spark, lake, world = scene.spark, scene.lake, scene.world
    run.stand_in("Unity Catalog feature tables", "Delta tables with NOT NULL (customer_id, feature_ts) in the workdir")
    create_feature_tables(spark, lake)
    snapshots(scene, 1, DEPLOY_DAY).write.format("delta").mode("append").save(lake.activity)
    spark.createDataFrame(scene.profile).write.format("delta").mode("append").save(lake.profile)
    rerun = features.merge_features(spark, lake.activity, snapshots(scene, DEPLOY_DAY, DEPLOY_DAY))
    per_day = features.snapshot_summary(spark.read.format("delta").load(lake.activity))
    run.table(per_day, title="feature_store.customer_activity: one snapshot per day (first rows)", max_rows=4)
    run.check(
        "one row per primary key (customer_id, feature_ts): every customer once in every snapshot",
        (per_day["rows"] == per_day["customers"]).all() and (per_day["rows"] == len(world.customers)).all()
        and per_day["day"].tolist() == list(range(1, DEPLOY_DAY + 1)),
        f"{int(per_day['rows'].sum()):,} rows = {len(world.customers):,} customers × {DEPLOY_DAY} daily snapshots",
    )  # fmt: skip
    truth = features.expected_views_7d(scene.raw, range(1, DEPLOY_DAY + 1))
    run.check(
        "every snapshot's views_7d total equals a pandas count over the raw events",
        dict(zip(per_day["day"].astype(int), per_day["views_7d"].astype(int), strict=True)) == truth,
        f"{len(truth)} snapshots compared",
    )
    run.check(
        "re-running the day's feature job (a MERGE) changes nothing",
        rerun == {"num_inserted_rows": 0, "num_updated_rows": 0},
        f"inserted {rerun['num_inserted_rows']}, updated {rerun['num_updated_rows']}",
    )
    keyless = f"INSERT INTO {delta_table(lake.activity)} VALUES (NULL, TIMESTAMP'2026-03-01', 0, 0, 0, 0.0, 0, 0, 0)"
    try:
        spark.sql(keyless)
        rejected = None
    except Exception as exc:
        rejected = re.search(r"\[DELTA_NOT_NULL\w*\][^\n]*", str(exc))
    run.check(
        "Delta rejects a row without a key (NOT NULL enforced)",
        rejected is not None,
        rejected.group(0)[:100] if rejected else "the row was accepted",
    )
    run.cloud_only_step(
        "unity-catalog",
        FEATURE_ENGINEERING,
        "primary keys with TIMESERIES and the Feature Engineering client exist only in Unity Catalog; "
        "locally the as-of join in the next step applies the same rule, written out",
        kind="feature tables + training set",
        language="python",
        purpose="the point-in-time join, done by Databricks Feature Engineering",
    )


def as_of_join(spine: DataFrame, feature_rows: DataFrame, prefix: str) -> DataFrame:
    """For every spine row, the latest feature row with feature_ts <= label_ts (left join: no row lost).

    This is what Databricks Feature Engineering does for a FeatureLookup with a
    `timestamp_lookup_key`; written out so the rule is visible: never a value from the future.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ts_column = f"{prefix}_feature_ts"
    renamed = feature_rows.withColumnRenamed("feature_ts", ts_column).withColumnRenamed("customer_id", "f_customer")
    candidates = spine.select("customer_id", "label_ts").join(
        renamed, (F.col("f_customer") == F.col("customer_id")) & (F.col(ts_column) <= F.col("label_ts"))
    )
    latest = Window.partitionBy("customer_id", "label_ts").orderBy(F.col(ts_column).desc())
    picked = candidates.withColumn("_rank", F.row_number().over(latest)).where("_rank = 1").drop("_rank", "f_customer")
    return spine.join(picked, ["customer_id", "label_ts"], "left")


def latest_value_join(spine: DataFrame, feature_rows: DataFrame, prefix: str) -> DataFrame:
    """The naive join: each customer's most recent feature row, whatever the label's time."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    newest = Window.partitionBy("customer_id").orderBy(F.col("feature_ts").desc())
    latest = feature_rows.withColumn("_rank", F.row_number().over(newest)).where("_rank = 1").drop("_rank")
    return spine.join(latest.withColumnRenamed("feature_ts", f"{prefix}_feature_ts"), "customer_id", "left")


def training_set(spine: DataFrame, lake: Lake, events: DataFrame, *, naive: bool = False) -> DataFrame:
    """Spine (+ any spine columns) + label + activity and profile features, as-of or naively joined."""
    from pyspark.sql import functions as F

    spark = spine.sparkSession
    activity = spark.read.format("delta").load(lake.activity)
    profile = spark.read.format("delta").load(lake.profile)
    join = latest_value_join if naive else as_of_join
    joined = join(join(features.with_labels(spine, events, LABEL_HORIZON), activity, "activity"), profile, "profile")
    extra = [c for c in spine.columns if c not in ("customer_id", "label_ts")]
    return joined.select(
        "customer_id",
        "label_ts",
        "label",
        "activity_feature_ts",
        "profile_feature_ts",
        *[F.col(c).cast("double").alias(c) for c in NUMERIC_FEATURES],
        "segment",
        *extra,
    )


def leak_count(frame: pd.DataFrame) -> int:
    """Rows where any feature was observed after the label's timestamp."""
    late = (frame["activity_feature_ts"] > frame["label_ts"]) | (frame["profile_feature_ts"] > frame["label_ts"])
    return int(late.sum())


def build_training_sets(run: PatternRun, scene: Scene) -> tuple[DataFrame, pd.DataFrame]:
    """Step 3: as-of joined training (day 7) and held-out (day 14) sets; the naive join's leak measured.

    The set is computed in Spark and kept in memory; step 4 stores it in Snowflake, the governed
    copy the model is trained from (Pattern B).
    """
    run.step("Point-in-time training sets by as-of join, and what a naive join leaks", why="never learn the future")
    spark, lake, world = scene.spark, scene.lake, scene.world
    spines = [features.scoring_spine(world.customers, day).assign(split=split)
              for split, day in (("train", TRAIN_DAY), ("holdout", DEPLOY_DAY))]  # fmt: skip
    moments = pd.concat(spines, ignore_index=True)
    spine = spark.createDataFrame(moments)
    computed = training_set(spine, lake, scene.events).cache()
    stored_pdf = computed.toPandas().sort_values(["split", "customer_id"], kind="stable").reset_index(drop=True)
    naive = training_set(spine.where("split = 'train'"), lake, scene.events, naive=True).toPandas()
    incomplete = int(stored_pdf[list(FEATURES)].isna().any(axis=1).sum())
    run.check(
        "the as-of join keeps every scoring moment, each with all its features",
        len(stored_pdf) == len(moments) and incomplete == 0,
        f"{len(stored_pdf):,} rows = 2 spines × {len(world.customers):,} customers; {incomplete} incomplete",
    )
    run.check("no feature value observed after its label's timestamp (as-of join)", leak_count(stored_pdf) == 0)
    naive_leaks = leak_count(naive)
    run.check(
        "the naive latest-value join WOULD leak on this data",
        naive_leaks > 0,
        f"{naive_leaks:,} of {len(naive):,} rows use a snapshot taken after the label time",
    )
    plan = scene.plan
    honest = plan.cv_auc(training.baseline_estimator(), stored_pdf[stored_pdf["split"] == "train"])
    leaky = plan.cv_auc(training.baseline_estimator(), naive)
    run.figure("naive join: rows with future features", naive_leaks, "rows", how="feature_ts > label_ts")
    run.figure("CV AUC with leaked features (an illusion)", round(leaky, 4), how="baseline model, latest-value join")
    run.figure("CV AUC with point-in-time features", round(honest, 4), how="baseline model, as-of join")
    run.check("leaked features inflate the offline score", leaky > honest, f"{leaky:.3f} vs {honest:.3f}")
    run.table(
        stored_pdf[["customer_id", "label_ts", "activity_feature_ts", "purchases_7d", "label", "split"]].head(3),
        title="training_set: activity_feature_ts ≤ label_ts on every row",
    )
    return computed, stored_pdf


def pattern_b_read(
    run: PatternRun, scene: Scene, sf: SnowflakeSession, stored: DataFrame, stored_pdf: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Step 4: the training set goes to Snowflake; Spark reads it back from there, for training."""
    run.step("Pattern B: Snowflake stores the training data, Spark reads it from there", why="one governed copy")
    if sf.is_local:
        run.stand_in("Snowflake", "fakesnow (DuckDB) under the real snowflake-connector-python")
    # use_logical_type: timestamps staged as Parquet logical types, which Snowflake loads correctly.
    loaded = sf.write_pandas(stored_pdf, "TRAINING_SET", overwrite=True, use_logical_type=True)
    from_snowflake = sf.fetch_df("SELECT * FROM TRAINING_SET ORDER BY SPLIT, CUSTOMER_ID")
    read_back = scene.spark.createDataFrame(from_snowflake.rename(columns=str.lower))
    differences = rows_differing(stored.select(*read_back.columns), read_back)
    run.check(
        "Snowflake → Spark round trip is exact (exceptAll both ways)",
        loaded == len(stored_pdf) and not differences,
        f"{loaded:,} rows loaded with write_pandas; differences: {differences or 'none'}",
    )
    run.note("Locally the connector's Arrow fetch feeds spark.createDataFrame. On Databricks read in parallel with "
             "spark.read.format('snowflake').option('query', 'SELECT … FROM TRAINING_SET'), or train next to the "
             "data with Snowpark.")  # fmt: skip
    frame = read_back.toPandas()
    split = frame["split"]
    return frame[split == "train"].reset_index(drop=True), frame[split == "holdout"].reset_index(drop=True)


def train_and_register(
    run: PatternRun, store: MlflowStore, plan: training.Plan, train: pd.DataFrame, holdout: pd.DataFrame
) -> tuple[training.TrainedModel, training.TrainedModel]:
    """Step 5: MLflow store, baseline, automated search, held-out metrics, versions and aliases."""
    run.step("Training: a baseline and a small automated search, tracked and registered in MLflow", why="traceable")
    if store.is_local:
        run.stand_in("Databricks MLflow tracking and model registry", f"MLflow on {store.tracking_uri.split('/')[-1]}")
    scheme = store.tracking_uri.split(":")[0]
    run.figure("MLflow store first use (schema migration)", round(store.first_use_seconds, 2), "s",
               how=f"first call on a fresh {scheme} store", key=True)  # fmt: skip
    run.figure(
        "MLflow store call once migrated", round(store.warm_call_seconds * 1000, 1), "ms", how="the same call again"
    )
    if store.is_local:
        refusal = file_store_refusal(run.workdir / "mlruns")
        run.check(
            "MLflow 3 refuses the old file: store (maintenance mode)", "maintenance mode" in refusal, refusal[:90]
        )
    for short, (_, reason) in KNOWN_WARNINGS.items():
        run.note(f"MLflow warning filtered ({short}): {reason}.")
    purpose = "Probability that a customer purchases within 7 days of a scoring moment."
    training.ensure_registered_model(store, purpose, {"owner": "ml-platform", "pattern": "integration/03"})
    baseline = plan.baseline(store, train, holdout, label=f"day {TRAIN_DAY}")
    best, board = plan.search(store, train, holdout, label=f"day {TRAIN_DAY}")
    run.table(
        board.map(stats.four_decimals), title=f"Leaderboard: {CV_FOLDS}-fold CV ROC AUC on day-{TRAIN_DAY} moments"
    )
    run.table(
        [
            {"version": f"v{m.version}", "model": m.label, "cv_auc": stats.four_decimals(m.cv_auc)}
            | {k.removeprefix("holdout_"): stats.four_decimals(v) for k, v in m.metrics.items()}
            for m in (baseline, best)
        ],
        title=f"Held-out evaluation on day-{DEPLOY_DAY} moments (a later period, never trained on)",
    )
    run.figure(
        "baseline held-out ROC AUC", round(baseline.metrics["holdout_auc"], 4), key=True, how=f"day {DEPLOY_DAY}"
    )
    run.figure("best model held-out ROC AUC", round(best.metrics["holdout_auc"], 4), key=True, how=best.label)
    run.check(
        "both models beat chance clearly on the later period",
        min(baseline.metrics["holdout_auc"], best.metrics["holdout_auc"]) > 0.6,
    )
    store.client.set_registered_model_alias(store.model_name, CHAMPION, baseline.version)
    store.client.set_registered_model_alias(store.model_name, CHALLENGER, best.version)
    run.check(
        "registry: baseline is champion, search winner is challenger",
        alias_map(store) == {CHAMPION: baseline.version, CHALLENGER: best.version},
        json.dumps(alias_map(store)),
    )
    return baseline, best


def write_scores(sf: SnowflakeSession, scored: pd.DataFrame, store: MlflowStore, version: str, day: int) -> int:
    """Replace this version's scores for this day (delete + load: a rerun never duplicates); rows stored."""
    frame = scored[["customer_id", "segment", "score"]].assign(
        model_name=store.model_name, model_version=version, scored_at=features.day_ts(day)
    )[["customer_id", "segment", "model_name", "model_version", "score", "scored_at"]]
    where = ("MODEL_VERSION = %s AND SCORED_AT = %s", (version, features.day_ts(day).to_pydatetime()))
    sf.execute(SCORES_DDL)
    sf.execute(f"DELETE FROM PROPENSITY_SCORES WHERE {where[0]}", where[1])
    sf.write_pandas(frame, "PROPENSITY_SCORES", auto_create_table=False, use_logical_type=True)
    return int(sf.scalar(f"SELECT COUNT(*) FROM PROPENSITY_SCORES WHERE {where[0]}", where[1]))


def batch_scoring(
    run: PatternRun, scene: Scene, sf: SnowflakeSession, store: MlflowStore, population: pd.DataFrame, *, day: int
) -> pd.DataFrame:
    """Score a population with the champion as a Spark UDF and replace its scores in Snowflake."""
    frame = scene.spark.createDataFrame(population[["customer_id", *FEATURES]])
    version = alias_version(store, CHAMPION)
    scored_pdf = spark_udf_scores(store.model_name, version, frame, FEATURES).toPandas()
    written = write_scores(sf, scored_pdf, store, version, day)
    again = write_scores(sf, scored_pdf, store, version, day)
    run.check(
        f"day-{day} scores of v{version} in Snowflake: one row per customer, also after a rerun",
        written == again == len(population),
        f"{written:,} rows",
    )
    run.check("every score is a probability", bool(scored_pdf["score"].between(0, 1).all()))
    return scored_pdf


def serve_batch(
    run: PatternRun, scene: Scene, sf: SnowflakeSession, store: MlflowStore, holdout: pd.DataFrame
) -> pd.DataFrame:
    """Step 6: the champion scores everyone as a Spark UDF; Snowflake builds the campaign list."""
    run.step("Batch scoring: the registered champion as a Spark UDF, scores written to Snowflake", why="scale out")
    scored = batch_scoring(run, scene, sf, store, holdout, day=DEPLOY_DAY)
    version = alias_version(store, CHAMPION)
    targets = sf.fetch(TARGET_LIST_SQL, (version, features.day_ts(DEPLOY_DAY).to_pydatetime(), TARGET_FRACTION))
    run.table(targets, title=f"In Snowflake: the campaign list by segment (top {TARGET_FRACTION:.0%} by score)")
    expected = math.ceil(len(scored) * TARGET_FRACTION)
    run.check(
        "Snowflake's target list has the size pandas computes from the same scores",
        sum(int(r["TARGETED"]) for r in targets) == expected,
        f"{expected:,} customers",
    )
    return scored


def serve_online(
    run: PatternRun, store: MlflowStore, holdout: pd.DataFrame, scored: pd.DataFrame, versions: tuple[str, str]
) -> None:
    """Step 7: the same version behind a JSON endpoint; online and batch must agree."""
    run.step("Online serving: the same model version as a JSON endpoint on 127.0.0.1", why="one model, two paths")
    run.stand_in("Databricks Model Serving", "MLflow's scoring app (the one `mlflow models serve` runs) on 127.0.0.1")
    sample = holdout.head(50)
    with ModelEndpoint(f"models:/{store.model_name}@{CHAMPION}", version=alias_version(store, CHAMPION)) as endpoint:
        online = endpoint_scores(endpoint, sample, FEATURES, REQUEST_BATCH)
        for record in sample[list(FEATURES)].head(30).to_dict(orient="records"):
            endpoint.predict([record])
        latencies = sorted(endpoint.latencies_ms[-30:])
        run.say(f"POST {endpoint.url}/invocations {{'dataframe_records': [...]}} → {{'predictions': [[p0, p1], ...]}}")
    batch = scored.set_index("customer_id")["score"].reindex(sample["customer_id"]).to_numpy()
    difference = float(np.max(np.abs(online - batch)))
    run.check(
        "online and batch predictions agree for the same rows",
        difference < 1e-9,
        f"max |online - batch| = {difference:.1e} over {len(sample)} customers",
    )
    run.figure("online p50 latency (1 record)", round(latencies[len(latencies) // 2], 2), "ms", how="30 requests")
    roles = {CHAMPION: versions[0], CHALLENGER: versions[1]}
    request = model_serving_request("purchase-propensity", store.model_name, roles, capture_schema="main.ml")
    run.cloud_only_step(
        "databricks-serving",
        request,
        "a Databricks Model Serving endpoint provisions billable compute; locally MLflow's scoring app serves "
        "each version. Its traffic split is per request; for a per-customer split, route by hash as step 8 does",
        kind="serving endpoint",
        language="python",
        purpose="champion and challenger behind one endpoint, 50/50, every request logged to an inference table",
    )


def promote(store: MlflowStore, result: AbResult) -> None:
    """Alias swap: the challenger becomes champion, remembering whom it replaced (for rollback)."""
    client, name = store.client, store.model_name
    client.set_registered_model_alias(name, CHAMPION, result.challenger_version)
    client.set_model_version_tag(name, result.challenger_version, "replaced_version", result.champion_version)
    client.delete_registered_model_alias(name, CHALLENGER)


def ab_gate(
    run: PatternRun, store: MlflowStore, population: pd.DataFrame, world: EcommerceWorld, experiment: str, *, gate: str
) -> AbResult:
    """An A/B test through the two endpoints, the significance gate, and the alias swap it allows."""
    from scipy.stats import chi2_contingency

    propensity = world.purchase_propensity
    result = run_experiment(store, population, propensity, experiment, DESIGN, aliases=(CHAMPION, CHALLENGER))
    champions, challengers = result.arms
    run.check(
        "the split is balanced (binomial test p > 0.001)",
        result.balance_p > 0.001,
        f"{champions:,} champion / {challengers:,} challenger, p = {result.balance_p:.2f}",
    )
    test = result.test
    title = f"A/B test {result.experiment} (top {TARGET_FRACTION:.0%} of each arm get the offer)"
    run.table(result.arm_rows(), title=title)
    run.say(
        f"lift {test.lift:+.4f} (95% CI {test.ci_low:+.4f} … {test.ci_high:+.4f}), z = {test.z:.2f}, "
        f"p = {test.p_value:.4g}; this sample detects lifts of {result.mde:.3f} or more (80% power)"
    )
    table = [[test.conversions_a, test.n_a - test.conversions_a], [test.conversions_b, test.n_b - test.conversions_b]]
    independent = float(chi2_contingency(table, correction=False).pvalue)
    run.check(
        "z-test p-value equals scipy's chi-square test on the same 2x2 table",
        abs(independent - test.p_value) < 1e-9,
        f"{test.p_value:.6g} vs {independent:.6g}",
    )
    run.say(f"decision: {'PROMOTE' if result.decision.promote else 'KEEP CHAMPION'} — {result.decision.reason}")
    if result.decision.promote:
        promote(store, result)
    expected = result.challenger_version if result.decision.promote else result.champion_version
    run.check(
        "the registry follows the gate (promoted iff significant and better)",
        alias_map(store).get(CHAMPION) == expected,
        json.dumps(alias_map(store)),
    )
    run.figure(f"A/B {gate} p-value", round(result.test.p_value, 4), key=True, how=f"lift {result.test.lift:+.4f}")
    return result


def experiment_on_deploy_day(
    run: PatternRun, store: MlflowStore, holdout: pd.DataFrame, world: EcommerceWorld, versions: tuple[str, str]
) -> AbResult:
    """Step 8: the split survives a restart; then the first A/B test and its gate."""
    run.step(f"A/B test on day {DEPLOY_DAY}: champion v{versions[0]} vs challenger v{versions[1]}", why="prove the win")
    experiment = f"gate-1-day-{DEPLOY_DAY}"
    stable, switched = assignment_survives_restart(holdout["customer_id"].tolist(), experiment)
    run.check(
        "fresh processes put every customer in the same arm (sha256 split)",
        stable,
        f"with Python's salted hash() two processes disagree on {switched:,} of {len(holdout):,} customers",
    )
    return ab_gate(run, store, holdout, world, experiment, gate="gate 1")


def monitor_drift(run: PatternRun, scene: Scene, train: pd.DataFrame) -> pd.DataFrame:
    """Step 9: the feature job keeps running; PSI per feature against the training data."""
    run.step(f"Monitoring on day {MONITOR_DAY}: feature drift (PSI) against the training data", why="catch decay")
    added = features.merge_features(scene.spark, scene.lake.activity, snapshots(scene, DEPLOY_DAY + 1, RETRAIN_DAY))
    run.say(f"the daily feature job ran on through day {RETRAIN_DAY}: {added['num_inserted_rows']:,} snapshot rows")
    activity = scene.spark.read.format("delta").load(scene.lake.activity)
    days = (DEPLOY_DAY, MONITOR_DAY, RETRAIN_DAY)
    frames = features.snapshot_frames(activity, scene.profile, days, FEATURES, NUMERIC_FEATURES)
    before, now = f"psi day {DEPLOY_DAY}", f"psi day {MONITOR_DAY}"
    windows = {before: frames[DEPLOY_DAY], now: frames[MONITOR_DAY]}
    drift = stats.psi_table(train, windows, NUMERIC_FEATURES, CATEGORICAL_FEATURES, PSI_THRESHOLD)
    run.table(
        drift.map(stats.four_decimals),
        title=f"PSI against the day-{TRAIN_DAY} training data (alarm at {PSI_THRESHOLD})",
        max_rows=len(FEATURES),
    )
    run.check(
        f"no alarm on day {DEPLOY_DAY}, before the campaign (the monitor is not just noise)",
        float(drift[before].max()) < PSI_THRESHOLD,
        f"max PSI {float(drift[before].max()):.3f}",
    )
    worst = drift.iloc[0]
    run.check(
        f"drift detected on day {MONITOR_DAY} → retraining triggered",
        float(worst[now]) >= PSI_THRESHOLD,
        f"{worst['feature']}: PSI {float(worst[now]):.3f} ≥ {PSI_THRESHOLD}; "
        f"{int((drift['status'] == 'DRIFT').sum())} feature(s) over the threshold",
    )
    run.figure("max PSI at monitoring", round(float(worst[now]), 3), key=True, how=str(worst["feature"]))
    return frames[RETRAIN_DAY]


def retrain(
    run: PatternRun, scene: Scene, store: MlflowStore, holdout_auc: dict[str, float], population: pd.DataFrame
) -> training.TrainedModel:
    """Step 10: new labels (day 21 moments, mature on day 29), the same search, a new challenger, the gate again."""
    run.step(f"Automated retraining on day {RETRAIN_DAY}: fresh labels, a new version, the gate again", why="recover")
    spine = scene.spark.createDataFrame(features.scoring_spine(scene.world.customers, MONITOR_DAY))
    frame = training_set(spine, scene.lake, scene.events).toPandas()
    run.check("the retraining set is point-in-time correct too", leak_count(frame) == 0, f"{len(frame):,} rows")
    champion = alias_version(store, CHAMPION)
    decayed = score_version(store, champion, frame, FEATURES)
    run.figure(
        f"champion v{champion} ROC AUC on day-{MONITOR_DAY} moments",
        round(decayed, 4),
        how=f"{holdout_auc[champion]:.4f} on day {DEPLOY_DAY}",
    )
    model, _ = scene.plan.search(store, frame, None, label=f"day {MONITOR_DAY} (retrain)")
    store.client.set_registered_model_alias(store.model_name, CHALLENGER, model.version)
    run.say(
        f"registered v{model.version} ({model.label}, CV ROC AUC {model.cv_auc:.4f} on the new data) as challenger; "
        f"champion v{champion} scores {decayed:.4f} on the same moments"
    )
    ab_gate(run, store, population, scene.world, f"gate-2-day-{RETRAIN_DAY}", gate="gate 2")
    return model


def rollback_and_rescore(
    run: PatternRun, scene: Scene, sf: SnowflakeSession, store: MlflowStore, population: pd.DataFrame, *, retrained: str
) -> None:
    """Step 11: move `champion` back to the version it replaced and forward again, each time checking what
    serves; then the champion's scores in Snowflake and every version's lineage."""
    run.step(
        "Rollback drill, and the current champion's scores in Snowflake", why="undo in one move, trace every version"
    )
    client, probe = store.client, population.head(20)
    champion = alias_version(store, CHAMPION)
    replaced = client.get_model_version(store.model_name, champion).tags.get("replaced_version")
    if replaced:
        client.set_registered_model_alias(store.model_name, CHAMPION, replaced)
        rolled_back = serves_version(store, CHAMPION, replaced, probe, FEATURES, batch=REQUEST_BATCH)
        client.set_registered_model_alias(store.model_name, CHAMPION, champion)
        restored = serves_version(store, CHAMPION, champion, probe, FEATURES, batch=REQUEST_BATCH)
        run.check(
            f"rollback: champion → v{replaced} serves at once; roll forward → v{champion} again",
            rolled_back and restored,
            "one alias move each way; an endpoint resolves models:/…@champion when it deploys",
        )
    else:
        run.say("no promotion happened in this run, so there is nothing to roll back to")
    batch_scoring(run, scene, sf, store, population, day=RETRAIN_DAY)
    history = sf.fetch(
        "SELECT MODEL_VERSION, SCORED_AT, COUNT(*) AS CUSTOMERS, ROUND(AVG(SCORE), 4) AS MEAN_SCORE "
        "FROM PROPENSITY_SCORES GROUP BY 1, 2 ORDER BY 2"
    )
    run.table(history, title="In Snowflake: PROPENSITY_SCORES by version and day")
    registry = registry_table(store)
    run.table(registry, title=f"Registry: {store.model_name}")
    run.check(
        f"v{retrained} and every other version trace back to their MLflow runs",
        len(registry) == 3 and all(row["run"] for row in registry),
    )


def body(run: PatternRun) -> None:
    if run.rows < MIN_ROWS:
        raise ExpertError(
            f"--rows {run.rows:,} is too small for this pattern",
            f"use --rows {MIN_ROWS:,} or more: the A/B tests need a few hundred customers per arm",
        )
    scene = load_world(run)
    build_feature_store(run, scene)
    computed, computed_pdf = build_training_sets(run, scene)
    with run.snowflake(database="EXPERT", schema="ML") as sf:
        train, holdout = pattern_b_read(run, scene, sf, computed, computed_pdf)
        with mlflow_store(run.settings, run.workdir) as store:
            baseline, best = train_and_register(run, store, scene.plan, train, holdout)
            scored = serve_batch(run, scene, sf, store, holdout)
            serve_online(run, store, holdout, scored, (baseline.version, best.version))
            experiment_on_deploy_day(run, store, holdout, scene.world, (baseline.version, best.version))
            population = monitor_drift(run, scene, train)
            holdout_auc = {m.version: m.metrics["holdout_auc"] for m in (baseline, best)}
            retrained = retrain(run, scene, store, holdout_auc, population)
            rollback_and_rescore(run, scene, sf, store, population, retrained=retrained.version)
    computed.unpersist()
    scene.events.unpersist()


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=120_000)


if __name__ == "__main__":
    raise SystemExit(main())
