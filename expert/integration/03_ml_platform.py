"""ML platform: feature store, training, registry, serving, A/B tests, drift and automated retraining.

Why it matters in production: most ML failures are platform failures, not modelling failures.
A training set that joins the latest feature values leaks the future and looks brilliant until
launch; a model nobody can trace to its run cannot be rolled back; a better offline AUC is not a
business win until an experiment says so; and a model trained last month quietly degrades when
the traffic changes. This pattern runs the whole loop for a purchase-propensity model, for real.

Learning objectives:
- Build point-in-time-correct training sets from Delta feature tables (primary key + timestamp)
  with an as-of join, and measure what a naive latest-value join would have leaked.
- Pattern B: Snowflake stores the training data, Spark reads it and learns, and the scores are
  written back to Snowflake and queried there.
- Train a baseline and a small automated search (cross-validated), evaluate on a later period,
  track everything in MLflow and manage versions with `champion` / `challenger` aliases.
- Serve the same model version as a Spark UDF (batch) and as a JSON endpoint (online) and prove
  they agree.
- Run a hash-split A/B test with a two-proportion z-test; promote only when significant; roll back.
- Detect feature drift (PSI), retrain automatically, register the new version and re-run the gate.

Run it:
    python expert/integration/03_ml_platform.py [--rows 120000]
    expert run integration/03
Locally: Spark + Delta Lake, fakesnow (DuckDB) under the Snowflake connector, MLflow on a SQLite
file, MLflow's scoring app on 127.0.0.1. With credentials in .env: the training data and scores
live in your Snowflake account, runs and models in your MLflow server or Databricks workspace
(`MLFLOW_TRACKING_URI=databricks`, `MLFLOW_REGISTRY_URI=databricks-uc`); Unity Catalog feature
tables and Model Serving endpoints are shown as the definitions to apply.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from expert.lakehouse.delta_ops import merge_into
from expert.ml import stats
from expert.ml.serving import ModelEndpoint
from expert.ml.tracking import (
    KNOWN_WARNINGS,
    TRUST_ENV,
    MlflowStore,
    file_store_refusal,
    mlflow_store,
    trusted_model_loading,
)
from expert.runtime.data import DAYS, EPOCH, EcommerceWorld
from expert.runtime.errors import ExpertError
from expert.runtime.pattern import PatternRun, run_pattern

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from sklearn.pipeline import Pipeline

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
# customer base. It changes what the features look like, not who buys: the hidden propensity of
# every customer is untouched, which is exactly why a model that learnt "views mean buyers" fails.
CAMPAIGN_SHARE = 0.4
CAMPAIGN_VIEWS_PER_DAY = 3.0

ACTIVITY_COLUMNS = {
    "views_7d": "INT",
    "carts_7d": "INT",
    "purchases_7d": "INT",
    "spend_7d": "DOUBLE",
    "active_days_7d": "INT",
    "cart_rate_7d": "DOUBLE",
    "days_since_last_event": "DOUBLE",
}
"""customer_activity's value columns and their Delta types: the 7 days before each snapshot."""
NUMERIC_FEATURES = (*ACTIVITY_COLUMNS, "age_years")
CATEGORICAL_FEATURES = ("segment",)
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
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


@dataclass(frozen=True)
class Lake:
    """Where this run's Delta tables live (path-based: a run owns its tables)."""

    activity: str
    profile: str


@dataclass
class TrainedModel:
    """A fitted pipeline, how it scored, and its registry version once registered."""

    label: str
    pipeline: Pipeline
    params: dict[str, Any]
    cv_auc: float
    metrics: dict[str, float]
    version: str = ""


@dataclass(frozen=True)
class AbResult:
    experiment: str
    champion_version: str
    challenger_version: str
    test: stats.TwoProportionTest
    decision: stats.GateDecision
    mde: float
    true_rate_a: float
    true_rate_b: float


# --- step 1: the data ------------------------------------------------------------------------


def campaign_traffic(world: EcommerceWorld, *, start_day: int) -> pd.DataFrame:
    """View-only sessions a display campaign adds from `start_day`, for a seeded share of customers.

    Documented, deterministic transformation of the generator's world: the campaign's visitors
    are chosen by hash, their visit times are uniform over the campaign days, and nothing about
    their purchases changes.
    """
    rng = np.random.default_rng([world.seed, *b"campaign"])
    customers = world.customers["customer_id"].to_numpy()
    reached = customers[[stats.bucket(c, "campaign") < CAMPAIGN_SHARE for c in customers]]
    days = DAYS - start_day
    visits = rng.poisson(CAMPAIGN_VIEWS_PER_DAY * days, len(reached))
    customer_ids = np.repeat(reached, visits)
    products = world.products
    product_idx = rng.integers(0, len(products), len(customer_ids))
    offsets = rng.integers(start_day * 86_400, DAYS * 86_400, len(customer_ids))
    events = world.events
    return pd.DataFrame(
        {
            "event_id": events["event_id"].max() + 1 + np.arange(len(customer_ids), dtype=np.int64),
            "session_id": events["session_id"].max() + 1 + np.arange(len(customer_ids), dtype=np.int64),
            "customer_id": customer_ids,
            "product_id": products["product_id"].to_numpy()[product_idx],
            "event_type": "view",
            "channel": "web",
            "price": products["price"].to_numpy()[product_idx],
            "event_ts": pd.to_datetime(EPOCH) + pd.to_timedelta(offsets, unit="s"),
        }
    )


def day_ts(day: int) -> pd.Timestamp:
    """Midnight UTC of a world day, as a naive timestamp in Spark's session time zone (UTC)."""
    return pd.Timestamp(EPOCH + timedelta(days=day)).tz_convert(None)


# --- step 2: the feature store ---------------------------------------------------------------


def create_feature_tables(spark: SparkSession, lake: Lake) -> None:
    """Declare both feature tables; Delta enforces the NOT NULL key columns on every write."""
    values = ", ".join(f"{name} {kind} NOT NULL" for name, kind in ACTIVITY_COLUMNS.items())
    spark.sql(
        f"CREATE TABLE delta.`{lake.activity}` (customer_id BIGINT NOT NULL, feature_ts TIMESTAMP NOT NULL, {values}) "
        "USING DELTA COMMENT 'Customer activity in the 7 days before feature_ts; key (customer_id, feature_ts)'"
    )
    spark.sql(
        f"CREATE TABLE delta.`{lake.profile}` (customer_id BIGINT NOT NULL, feature_ts TIMESTAMP NOT NULL, "
        "segment STRING NOT NULL, age_years INT NOT NULL) "
        "USING DELTA COMMENT 'Customer profile known from signup; key (customer_id, feature_ts)'"
    )


def activity_snapshots(events: DataFrame, customers: DataFrame, first_day: int, last_day: int) -> DataFrame:
    """Daily snapshots at midnight of days `first_day..last_day`; each sees only events before it.

    The job is given only events before its last snapshot, as a real daily job would be: the
    point-in-time discipline starts where features are computed, not only where they are joined.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = events.sparkSession
    epoch_s = int(EPOCH.timestamp())
    seen = events.where(F.col("event_ts") < F.lit(day_ts(last_day)))
    is_type = {t: F.col("event_type") == t for t in ("view", "cart", "purchase")}
    daily = seen.groupBy(
        "customer_id", F.floor((F.unix_timestamp("event_ts") - epoch_s) / 86_400).cast("int").alias("day")
    ).agg(
        F.sum(is_type["view"].cast("int")).alias("views"),
        F.sum(is_type["cart"].cast("int")).alias("carts"),
        F.sum(is_type["purchase"].cast("int")).alias("purchases"),
        F.sum(F.when(is_type["purchase"], F.col("price")).otherwise(0.0)).alias("spend"),
        F.max("event_ts").alias("last_event_ts"),
    )
    days = spark.range(0, last_day).select(F.col("id").cast("int").alias("day"))
    grid = (
        customers.select("customer_id")
        .crossJoin(days)
        .join(daily, ["customer_id", "day"], "left")
        .fillna(0, subset=["views", "carts", "purchases"])
        .fillna(0.0, subset=["spend"])
    )
    week = Window.partitionBy("customer_id").orderBy("day").rowsBetween(-6, 0)
    history = Window.partitionBy("customer_id").orderBy("day").rowsBetween(Window.unboundedPreceding, 0)
    snapshot_day = F.col("day") + 1
    feature_ts = F.timestamp_seconds(F.lit(epoch_s) + snapshot_day * 86_400)
    snapshots = grid.select(
        "customer_id",
        snapshot_day.alias("snapshot_day"),
        feature_ts.alias("feature_ts"),
        F.sum("views").over(week).cast("int").alias("views_7d"),
        F.sum("carts").over(week).cast("int").alias("carts_7d"),
        F.sum("purchases").over(week).cast("int").alias("purchases_7d"),
        F.round(F.sum("spend").over(week), 2).alias("spend_7d"),
        F.sum((F.col("last_event_ts").isNotNull()).cast("int")).over(week).cast("int").alias("active_days_7d"),
        F.max("last_event_ts").over(history).alias("last_event_ts"),
    ).where(F.col("snapshot_day").between(first_day, last_day))
    recency = (F.unix_timestamp("feature_ts") - F.unix_timestamp("last_event_ts")) / 86_400
    return snapshots.select(
        "customer_id",
        "feature_ts",
        "views_7d",
        "carts_7d",
        "purchases_7d",
        "spend_7d",
        "active_days_7d",
        F.round(F.col("carts_7d") / F.greatest(F.col("views_7d"), F.lit(1)), 4).alias("cart_rate_7d"),
        F.round(F.coalesce(F.least(recency, F.lit(RECENCY_CAP_DAYS)), F.lit(RECENCY_CAP_DAYS)), 4).alias(
            "days_since_last_event"
        ),
    )


def merge_features(spark: SparkSession, path: str, updates: DataFrame) -> dict[str, int]:
    """Upsert snapshots by primary key; unchanged rows are not rewritten. Returns the rows inserted and updated."""
    value_columns = [c for c in updates.columns if c not in ("customer_id", "feature_ts")]
    changed = " OR ".join(f"NOT (t.{c} <=> s.{c})" for c in value_columns)
    metrics = merge_into(
        spark,
        path,
        updates,
        "ON t.customer_id = s.customer_id AND t.feature_ts = s.feature_ts"
        f" WHEN MATCHED AND ({changed}) THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
    )
    return {k: metrics[k] for k in ("num_inserted_rows", "num_updated_rows")}


def profile_features(world: EcommerceWorld) -> pd.DataFrame:
    """Profile features from the customer table: no PII leaves it, only segment and age."""
    customers = world.customers
    return pd.DataFrame(
        {
            "customer_id": customers["customer_id"].astype("int64"),
            "feature_ts": pd.to_datetime(customers["signup_ts"]).dt.tz_convert(None),
            "segment": customers["segment"],
            "age_years": (EPOCH.year - pd.to_datetime(customers["birth_date"]).dt.year).astype("int32"),
        }
    )


def expected_views_7d(events: pd.DataFrame, days: Sequence[int]) -> dict[int, int]:
    """Ground truth from the raw events (pandas, not Spark): view events in each snapshot's window."""
    views = events.loc[events["event_type"] == "view", "event_ts"]
    window = {d: (pd.Timestamp(EPOCH + timedelta(days=d - 7)), pd.Timestamp(EPOCH + timedelta(days=d))) for d in days}
    return {d: int(((views >= start) & (views < end)).sum()) for d, (start, end) in window.items()}


# --- step 3: point-in-time training sets -----------------------------------------------------


def scoring_spine(customers: pd.DataFrame, day: int) -> pd.DataFrame:
    """One scoring moment per customer on `day`, at a hash-chosen second of that day."""
    ids = customers["customer_id"].astype("int64")
    offsets = [int(stats.bucket(c, f"moment-{day}") * 86_400) for c in ids]
    return pd.DataFrame({"customer_id": ids, "label_ts": day_ts(day) + pd.to_timedelta(offsets, unit="s")})


def with_labels(spine: DataFrame, events: DataFrame) -> DataFrame:
    """label = 1 if the customer purchases within LABEL_HORIZON after the scoring moment."""
    from pyspark.sql import functions as F

    purchases = events.where(F.col("event_type") == "purchase").select(
        F.col("customer_id").alias("p_customer"), F.col("event_ts").alias("purchase_ts")
    )
    horizon_s = int(LABEL_HORIZON.total_seconds())
    window = (
        (F.col("p_customer") == F.col("customer_id"))
        & (F.col("purchase_ts") >= F.col("label_ts"))
        & (F.unix_timestamp("purchase_ts") < F.unix_timestamp("label_ts") + horizon_s)
    )
    return (
        spine.join(purchases, window, "left")
        .groupBy(*spine.columns)
        .agg((F.count("purchase_ts") > 0).cast("int").alias("label"))
    )


def as_of_join(spine: DataFrame, features: DataFrame, prefix: str) -> DataFrame:
    """For every spine row, the latest feature row with feature_ts <= label_ts (left join: no row lost).

    This is what Databricks Feature Engineering does for a FeatureLookup with a
    `timestamp_lookup_key`; written out so the rule is visible: never a value from the future.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ts_column = f"{prefix}_feature_ts"
    renamed = features.withColumnRenamed("feature_ts", ts_column).withColumnRenamed("customer_id", "f_customer")
    candidates = spine.select("customer_id", "label_ts").join(
        renamed, (F.col("f_customer") == F.col("customer_id")) & (F.col(ts_column) <= F.col("label_ts"))
    )
    latest = Window.partitionBy("customer_id", "label_ts").orderBy(F.col(ts_column).desc())
    picked = candidates.withColumn("_rank", F.row_number().over(latest)).where("_rank = 1").drop("_rank", "f_customer")
    return spine.join(picked, ["customer_id", "label_ts"], "left")


def latest_value_join(spine: DataFrame, features: DataFrame, prefix: str) -> DataFrame:
    """The naive join: each customer's most recent feature row, whatever the label's time."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    newest = Window.partitionBy("customer_id").orderBy(F.col("feature_ts").desc())
    latest = features.withColumn("_rank", F.row_number().over(newest)).where("_rank = 1").drop("_rank")
    return spine.join(latest.withColumnRenamed("feature_ts", f"{prefix}_feature_ts"), "customer_id", "left")


def training_set(spine: DataFrame, lake: Lake, events: DataFrame, *, naive: bool = False) -> DataFrame:
    """Spine (+ any spine columns) + label + activity and profile features, as-of or naively joined."""
    from pyspark.sql import functions as F

    spark = spine.sparkSession
    activity = spark.read.format("delta").load(lake.activity)
    profile = spark.read.format("delta").load(lake.profile)
    join = latest_value_join if naive else as_of_join
    joined = join(join(with_labels(spine, events), activity, "activity"), profile, "profile")
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


# --- step 5: training and the registry -------------------------------------------------------


def single_threaded() -> Any:
    """sklearn on one thread: on small data, thread start-up costs more than it gives (and Spark shares the cores)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def make_pipeline(estimator: Any) -> Pipeline:
    """Scaling + one-hot encoding travel inside the model, so serving sends raw feature values."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prepare = ColumnTransformer(
        [
            ("numeric", StandardScaler(), list(NUMERIC_FEATURES)),
            ("segment", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
        ]
    )
    return Pipeline([("prepare", prepare), ("model", estimator)])


def candidates(seed: int) -> dict[str, Any]:
    """The automated search space: regularisation around the default, and two boosted-tree shapes."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    return {
        "logreg C=0.03": LogisticRegression(C=0.03, max_iter=1000),
        "logreg C=0.3": LogisticRegression(C=0.3, max_iter=1000),
        "boosting lr=0.05 depth=3": HistGradientBoostingClassifier(
            learning_rate=0.05, max_depth=3, max_iter=100, random_state=seed
        ),
        "boosting lr=0.1 depth=2": HistGradientBoostingClassifier(
            learning_rate=0.1, max_depth=2, max_iter=100, random_state=seed
        ),
    }


def baseline_estimator() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def cross_validated_auc(pipeline: Pipeline, frame: pd.DataFrame, seed: int) -> tuple[float, float]:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    scores = cross_val_score(pipeline, frame[list(FEATURES)], frame["label"], cv=folds, scoring="roc_auc")
    return float(scores.mean()), float(scores.std())


def holdout_metrics(pipeline: Pipeline, frame: pd.DataFrame) -> dict[str, float]:
    """ROC AUC, log loss and precision in the top 30% (what a campaign budget buys)."""
    from sklearn.metrics import log_loss, roc_auc_score

    scores = pipeline.predict_proba(frame[list(FEATURES)])[:, 1]
    return {
        "holdout_auc": float(roc_auc_score(frame["label"], scores)),
        "holdout_log_loss": float(log_loss(frame["label"], scores)),
        "holdout_precision_at_30pct": stats.precision_at_fraction(frame["label"], scores, TARGET_FRACTION),
    }


def params_of(estimator: Any) -> dict[str, Any]:
    keys = ("C", "learning_rate", "max_depth", "max_iter")
    return {"estimator": type(estimator).__name__} | {
        k: v for k, v in estimator.get_params().items() if k in keys and v is not None
    }


def log_and_register(
    store: MlflowStore, model: TrainedModel, train: pd.DataFrame, *, tags: dict[str, str], artifacts: dict[str, str]
) -> None:
    """Log the fitted pipeline with signature + input example, and register it as a new version."""
    from importlib.metadata import version

    import mlflow
    from mlflow.models import infer_signature

    example = train[list(FEATURES)].head(5)
    signature = infer_signature(example, model.pipeline.predict_proba(example))
    requirements = [f"{p}=={version(p)}" for p in ("scikit-learn", "cloudpickle", "pandas", "numpy")]
    mlflow.log_params(model.params)
    mlflow.log_metrics({"cv_auc": model.cv_auc, **model.metrics})
    for name, text in artifacts.items():
        mlflow.log_text(text, name)
    info = mlflow.sklearn.log_model(
        model.pipeline,
        name="model",
        signature=signature,
        input_example=example,
        serialization_format="cloudpickle",
        pip_requirements=requirements,
        pyfunc_predict_fn="predict_proba",
    )
    run_id = mlflow.active_run().info.run_id
    registered = store.client.create_model_version(
        store.model_name, source=info.model_uri, run_id=run_id, model_id=info.model_id, tags=tags,
        description=f"{model.label}: {json.dumps(model.params)}",
    )  # fmt: skip
    model.version = str(registered.version)


def ensure_registered_model(store: MlflowStore) -> None:
    from mlflow.exceptions import MlflowException

    try:
        store.client.create_registered_model(
            store.model_name,
            tags={"owner": "ml-platform", "pattern": "integration/03"},
            description="Probability that a customer purchases within 7 days of a scoring moment.",
        )
    except MlflowException as exc:
        if "already exists" not in str(exc).lower():
            raise


def search_and_register(
    store: MlflowStore, train: pd.DataFrame, holdout: pd.DataFrame | None, *, label: str, seed: int
) -> tuple[TrainedModel, pd.DataFrame]:
    """Cross-validate every candidate (one nested MLflow run each), refit the best, register it."""
    import mlflow

    rows = []
    with mlflow.start_run(run_name=label), single_threaded():
        for name, estimator in candidates(seed).items():
            pipeline = make_pipeline(estimator)
            with mlflow.start_run(run_name=name, nested=True):
                mean, spread = cross_validated_auc(pipeline, train, seed)
                mlflow.log_params(params_of(estimator))
                mlflow.log_metrics({"cv_auc": mean, "cv_auc_std": spread})
            rows.append({"candidate": name, "cv_auc": round(mean, 4), "cv_auc_std": round(spread, 4)})
        board = pd.DataFrame(rows).sort_values("cv_auc", ascending=False, kind="stable").reset_index(drop=True)
        best_name = str(board.loc[0, "candidate"])
        best = candidates(seed)[best_name]
        pipeline = make_pipeline(best).fit(train[list(FEATURES)], train["label"])
        metrics = holdout_metrics(pipeline, holdout) if holdout is not None else {}
        model = TrainedModel(best_name, pipeline, params_of(best), float(board.loc[0, "cv_auc"]), metrics)
        log_and_register(
            store,
            model,
            train,
            tags={"role": "automl best", "trained_on": label},
            artifacts={"leaderboard.csv": board.to_csv(index=False), "features.json": json.dumps(FEATURES)},
        )
    return model, board


# --- steps 6-8: serving and experiments ------------------------------------------------------


def batch_score(store: MlflowStore, population: DataFrame, alias: str) -> tuple[DataFrame, str]:
    """Score a Spark DataFrame with the registered model behind `alias` (mlflow.pyfunc.spark_udf)."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    version = str(store.client.get_model_version_by_alias(store.model_name, alias).version)
    with trusted_model_loading():
        udf = mlflow.pyfunc.spark_udf(
            population.sparkSession,
            f"models:/{store.model_name}/{version}",
            result_type="array<double>",
            env_manager="local",
            extra_env={TRUST_ENV: "true"},
        )
    inputs = F.struct(*[F.col(c) for c in FEATURES])
    return population.withColumn("score", udf(inputs)[1]), version


def assignment_survives_restart(ids: list[int], experiment: str) -> tuple[bool, int]:
    """Assign every customer in two fresh Python processes with different hash seeds.

    Returns whether both reproduce this process's sha256 arms exactly, and how many customers
    Python's built-in `hash()` (salted per process by PYTHONHASHSEED) puts in different arms.
    """
    code = (
        "import json, sys\n"
        "from expert.ml.split import assign_arm\n"
        "ids, experiment = json.load(sys.stdin)\n"
        "print(json.dumps([[assign_arm(i, experiment) for i in ids], [hash(f'{experiment}:{i}') % 2 for i in ids]]))"
    )
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code],
                input=json.dumps([ids, experiment]),
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
                env={**os.environ, "PYTHONHASHSEED": seed},
            ).stdout
        )
        for seed in ("1", "2")
    ]
    here = [stats.assign_arm(i, experiment) for i in ids]
    switched = sum(a != b for a, b in zip(runs[0][1], runs[1][1], strict=True))
    return all(arms == here for arms, _ in runs), switched


def propensity_to_convert(propensity: np.ndarray) -> np.ndarray:
    """The simulated response to an offer: the truth the experiment measures (hidden from models)."""
    return 1 / (1 + np.exp(-(OFFER_INTERCEPT + OFFER_SLOPE * propensity)))


def endpoint_scores(endpoint: ModelEndpoint, frame: pd.DataFrame) -> np.ndarray:
    """Score rows through the HTTP endpoint in batches of JSON records; P(purchase) per row."""
    records = frame[list(FEATURES)].to_dict(orient="records")
    out: list[float] = []
    for start in range(0, len(records), REQUEST_BATCH):
        out.extend(p[1] for p in endpoint.predict(records[start : start + REQUEST_BATCH]))
    return np.asarray(out, dtype=float)


def run_experiment(
    run: PatternRun,
    store: MlflowStore,
    population: pd.DataFrame,
    propensity: pd.Series,
    experiment: str,
) -> AbResult:
    """Hash-split customers between champion and challenger endpoints, target, simulate, test, gate."""
    import mlflow
    from scipy.stats import binomtest

    champion = str(store.client.get_model_version_by_alias(store.model_name, CHAMPION).version)
    challenger = str(store.client.get_model_version_by_alias(store.model_name, CHALLENGER).version)
    arms = population["customer_id"].map(lambda c: stats.assign_arm(c, experiment))
    n_b = int((arms == stats.CHALLENGER_ARM).sum())
    balance = binomtest(n_b, len(arms), 0.5).pvalue
    run.check(
        "the split is balanced (binomial test p > 0.001)",
        balance > 0.001,
        f"{len(arms) - n_b:,} champion / {n_b:,} challenger, p = {balance:.2f}",
    )
    outcome = {}
    for arm, version in ((stats.CHAMPION_ARM, champion), (stats.CHALLENGER_ARM, challenger)):
        members = population[arms == arm]
        with ModelEndpoint(f"models:/{store.model_name}/{version}", version=version) as endpoint:
            scores = endpoint_scores(endpoint, members)
        k = math.ceil(len(members) * TARGET_FRACTION)
        targeted = members["customer_id"].to_numpy()[np.argsort(-scores, kind="stable")[:k]]
        p_true = propensity_to_convert(propensity.reindex(targeted).to_numpy())
        draws = np.array([stats.bucket(c, f"{experiment}:outcome") for c in targeted])
        outcome[arm] = (int((draws < p_true).sum()), k, float(p_true.mean()))
    (conv_a, n_a, true_a), (conv_b, n_b_targeted, true_b) = outcome["A"], outcome["B"]
    test = stats.two_proportion_ztest(conv_a, n_a, conv_b, n_b_targeted, alpha=ALPHA)
    decision = stats.promotion_gate(test, alpha=ALPHA)
    mde = stats.minimum_detectable_effect(test.rate_a, n_a, n_b_targeted, alpha=ALPHA)
    with mlflow.start_run(run_name=f"ab {experiment}"):
        mlflow.log_params({"experiment": experiment, "champion": champion, "challenger": challenger})
        mlflow.log_metrics(
            {
                "conversions_champion": test.conversions_a,
                "n_champion": test.n_a,
                "conversions_challenger": test.conversions_b,
                "n_challenger": test.n_b,
                "rate_champion": test.rate_a,
                "rate_challenger": test.rate_b,
                "lift": test.lift,
                "z": test.z,
                "p_value": test.p_value,
                "mde": mde,
                "promoted": float(decision.promote),
            }
        )
    for version in (champion, challenger):
        store.client.set_model_version_tag(store.model_name, version, f"ab.{experiment}", decision.reason)
    return AbResult(experiment, champion, challenger, test, decision, mde, true_a, true_b)


def show_experiment(run: PatternRun, result: AbResult) -> None:
    test = result.test
    run.table(
        [
            {
                "arm": f"A champion v{result.champion_version}",
                "targeted": test.n_a,
                "converted": test.conversions_a,
                "rate": _fmt(test.rate_a),
                "true expected rate": _fmt(result.true_rate_a),
            },
            {
                "arm": f"B challenger v{result.challenger_version}",
                "targeted": test.n_b,
                "converted": test.conversions_b,
                "rate": _fmt(test.rate_b),
                "true expected rate": _fmt(result.true_rate_b),
            },
        ],
        title=f"A/B test {result.experiment} (top {TARGET_FRACTION:.0%} of each arm get the offer)",
    )
    run.say(
        f"lift {test.lift:+.4f} (95% CI {test.ci_low:+.4f} … {test.ci_high:+.4f}), z = {test.z:.2f}, "
        f"p = {test.p_value:.4g}; this sample detects lifts of {result.mde:.3f} or more (80% power)"
    )
    independent = _chi_square_p(test)
    run.check(
        "z-test p-value equals scipy's chi-square test on the same 2x2 table",
        abs(independent - test.p_value) < 1e-9,
        f"{test.p_value:.6g} vs {independent:.6g}",
    )
    run.say(f"decision: {'PROMOTE' if result.decision.promote else 'KEEP CHAMPION'} — {result.decision.reason}")


def _fmt(value: Any) -> Any:
    """Four decimals for metrics in tables (the narrator shows floats with two)."""
    return f"{value:.4f}" if isinstance(value, float) else value


def _chi_square_p(test: stats.TwoProportionTest) -> float:
    from scipy.stats import chi2_contingency

    table = [
        [test.conversions_a, test.n_a - test.conversions_a],
        [test.conversions_b, test.n_b - test.conversions_b],
    ]
    return float(chi2_contingency(table, correction=False).pvalue)


def promote(store: MlflowStore, result: AbResult) -> None:
    """Alias swap: the challenger becomes champion, remembering whom it replaced (for rollback)."""
    client, name = store.client, store.model_name
    client.set_registered_model_alias(name, CHAMPION, result.challenger_version)
    client.set_model_version_tag(name, result.challenger_version, "replaced_version", result.champion_version)
    client.delete_registered_model_alias(name, CHALLENGER)


def alias_map(store: MlflowStore) -> dict[str, str]:
    model = store.client.get_registered_model(store.model_name)
    return {alias: str(version) for alias, version in model.aliases.items()}


def registry_table(store: MlflowStore) -> list[dict[str, Any]]:
    """Every version with its aliases, role and the run that produced it (lineage)."""
    versions = store.client.search_model_versions(f"name = '{store.model_name}'")
    aliases = {}
    for alias, version in alias_map(store).items():
        aliases.setdefault(version, []).append(alias)
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version)):
        metrics = store.client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        rows.append(
            {
                "version": int(mv.version),
                "aliases": ", ".join(sorted(aliases.get(str(mv.version), []))) or "-",
                "role": mv.tags.get("role", ""),
                "trained on": mv.tags.get("trained_on", ""),
                "cv_auc": round(metrics.get("cv_auc", float("nan")), 4),
                "run": (mv.run_id or "")[:8],
            }
        )
    return rows


def serving_endpoint_config(store: MlflowStore, champion: str, challenger: str) -> str:
    """The Databricks Model Serving request for the same experiment: two served versions, 50/50."""
    from databricks.sdk.service.serving import (
        AutoCaptureConfigInput,
        EndpointCoreConfigInput,
        Route,
        ServedEntityInput,
        TrafficConfig,
    )

    config = EndpointCoreConfigInput(
        name="purchase-propensity",
        served_entities=[
            ServedEntityInput(
                name=role, entity_name=store.model_name, entity_version=version, workload_size="Small", scale_to_zero_enabled=True
            )
            for role, version in ((CHAMPION, champion), (CHALLENGER, challenger))
        ],
        traffic_config=TrafficConfig(
            routes=[Route(traffic_percentage=50, served_entity_name=CHAMPION), Route(traffic_percentage=50, served_entity_name=CHALLENGER)]
        ),
        auto_capture_config=AutoCaptureConfigInput(catalog_name="main", schema_name="ml", table_name_prefix="purchase_propensity"),
    )  # fmt: skip
    return "WorkspaceClient().serving_endpoints.create(name='purchase-propensity', config=...)\n" + json.dumps(
        config.as_dict(), indent=2
    )


def score_version(store: MlflowStore, version: str, frame: pd.DataFrame) -> float:
    """ROC AUC of one registered version on labelled rows (the performance monitor)."""
    import mlflow.pyfunc
    from sklearn.metrics import roc_auc_score

    with trusted_model_loading():
        model = mlflow.pyfunc.load_model(f"models:/{store.model_name}/{version}")
    return float(roc_auc_score(frame["label"], np.asarray(model.predict(frame[list(FEATURES)]))[:, 1]))


def serves_version(store: MlflowStore, version: str, probe: pd.DataFrame) -> bool:
    """Deploy `models:/<name>@champion` afresh and check it answers exactly like `version`."""
    import mlflow.pyfunc

    with trusted_model_loading():
        expected = np.asarray(
            mlflow.pyfunc.load_model(f"models:/{store.model_name}/{version}").predict(probe[list(FEATURES)])
        )[:, 1]
    resolved = str(store.client.get_model_version_by_alias(store.model_name, CHAMPION).version)
    with ModelEndpoint(f"models:/{store.model_name}@{CHAMPION}", version=resolved) as endpoint:
        served = endpoint_scores(endpoint, probe)
    return resolved == version and bool(np.allclose(served, expected, rtol=0, atol=1e-12))


# --- monitoring ------------------------------------------------------------------------------


def snapshot_frames(activity: DataFrame, profile: pd.DataFrame, days: Sequence[int]) -> dict[int, pd.DataFrame]:
    """The population as the feature store saw it at midnight of each day (model inputs, no label)."""
    from pyspark.sql import functions as F

    rows = activity.where(F.col("feature_ts").isin([day_ts(d).to_pydatetime() for d in days])).toPandas()
    rows = rows.merge(profile[["customer_id", "segment", "age_years"]], on="customer_id", how="left")
    rows[list(NUMERIC_FEATURES)] = rows[list(NUMERIC_FEATURES)].astype("float64")
    frames = {}
    for day in days:
        frame = rows[rows["feature_ts"] == day_ts(day)]
        frames[day] = frame[["customer_id", *FEATURES]].sort_values("customer_id", kind="stable").reset_index(drop=True)
    return frames


def drift_table(reference: pd.DataFrame, windows: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """PSI of every model input in each window against the training data, worst last window first."""
    rows = []
    for feature in FEATURES:
        row: dict[str, Any] = {"feature": feature}
        for label, window in windows.items():
            if feature in CATEGORICAL_FEATURES:
                row[label] = stats.psi_categorical(reference[feature], window[feature])
            else:
                row[label] = stats.psi(reference[feature], window[feature])
        rows.append(row)
    table = pd.DataFrame(rows)
    last = list(windows)[-1]
    table["status"] = np.where(table[last] >= PSI_THRESHOLD, "DRIFT", "ok")
    return table.sort_values(last, ascending=False, kind="stable").round(4).reset_index(drop=True)


# --- Snowflake -------------------------------------------------------------------------------

SCORES_DDL = """
CREATE TABLE IF NOT EXISTS PROPENSITY_SCORES (
    CUSTOMER_ID NUMBER NOT NULL, SEGMENT VARCHAR, MODEL_NAME VARCHAR, MODEL_VERSION VARCHAR,
    SCORE FLOAT, SCORED_AT TIMESTAMP_NTZ
)
"""
TARGET_LIST_SQL = """
WITH RANKED AS (
    SELECT SEGMENT, SCORE, COUNT(*) OVER () AS N,
           ROW_NUMBER() OVER (ORDER BY SCORE DESC, CUSTOMER_ID) AS POSITION
    FROM PROPENSITY_SCORES WHERE MODEL_VERSION = %s AND SCORED_AT = %s
)
SELECT SEGMENT, COUNT_IF(POSITION <= CEIL(N * %s)) AS TARGETED, COUNT(*) AS CUSTOMERS,
       ROUND(AVG(SCORE), 4) AS MEAN_SCORE
FROM RANKED GROUP BY SEGMENT ORDER BY SEGMENT
"""


def publish_training_set(sf: SnowflakeSession, stored: pd.DataFrame) -> int:
    """Load the point-in-time training set into Snowflake, where the governed copy lives.

    `use_logical_type=True` stages timestamps as Parquet logical types; without it Snowflake
    cannot load pandas datetimes correctly (fakesnow refuses them, as the real service misreads them).
    """
    return sf.write_pandas(stored, "TRAINING_SET", overwrite=True, use_logical_type=True)


def write_scores(
    sf: SnowflakeSession,
    scored: pd.DataFrame,
    store: MlflowStore,
    *,
    version: str,
    scored_at: pd.Timestamp,
    world: EcommerceWorld,
) -> int:
    """Replace this version's scores for this day (delete + load: a rerun never duplicates)."""
    segments = world.customers.set_index("customer_id")["segment"]
    frame = pd.DataFrame(
        {
            "customer_id": scored["customer_id"].astype("int64"),
            "segment": scored["customer_id"].map(segments),
            "model_name": store.model_name,
            "model_version": version,
            "score": scored["score"].astype("float64"),
            "scored_at": scored_at,
        }
    )
    sf.execute(SCORES_DDL)
    sf.execute(
        "DELETE FROM PROPENSITY_SCORES WHERE MODEL_VERSION = %s AND SCORED_AT = %s",
        (version, scored_at.to_pydatetime()),
    )
    sf.write_pandas(frame, "PROPENSITY_SCORES", auto_create_table=False, use_logical_type=True)
    return int(
        sf.scalar(
            "SELECT COUNT(*) FROM PROPENSITY_SCORES WHERE MODEL_VERSION = %s AND SCORED_AT = %s",
            (version, scored_at.to_pydatetime()),
        )
    )


# --- the pattern -----------------------------------------------------------------------------


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


def load_world(run: PatternRun) -> Scene:
    """Step 1: the generator's customers and clickstream, plus the campaign traffic from DEPLOY_DAY."""
    run.step("The world: customers, clickstream, and a campaign the model has never seen")
    spark = run.spark
    world = EcommerceWorld(run.rows, seed=run.seed)
    campaign = campaign_traffic(world, start_day=DEPLOY_DAY)
    raw = pd.concat([world.events, campaign], ignore_index=True)
    local = raw[["customer_id", "event_type", "price", "event_ts"]].assign(event_ts=raw["event_ts"].dt.tz_convert(None))
    events = spark.createDataFrame(local).cache()
    lake = Lake(*(str(run.workdir / "lake" / "feature_store" / n) for n in ("customer_activity", "customer_profile")))
    run.table(
        [
            {"input": "customers", "rows": len(world.customers)},
            {"input": "clickstream events (generator)", "rows": len(world.events)},
            {"input": f"campaign view events from day {DEPLOY_DAY}", "rows": len(campaign)},
            {"input": "customers the campaign reaches", "rows": campaign["customer_id"].nunique()},
        ],
        title="Inputs (one seeded generator)",
    )
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
    return Scene(spark, lake, world, raw, events, customers, profile_features(world))


def build_feature_store(run: PatternRun, scene: Scene) -> None:
    """Step 2: daily activity snapshots and profiles as Delta feature tables; the daily job is a MERGE."""
    from pyspark.sql import functions as F

    run.step("Feature store: Delta feature tables keyed by (customer_id, feature_ts)")
    spark, lake, world = scene.spark, scene.lake, scene.world
    create_feature_tables(spark, lake)
    activity_snapshots(scene.events, scene.customers, 1, DEPLOY_DAY).write.format("delta").mode("append").save(
        lake.activity
    )
    spark.createDataFrame(scene.profile).write.format("delta").mode("append").save(lake.profile)
    rerun = merge_features(
        spark, lake.activity, activity_snapshots(scene.events, scene.customers, DEPLOY_DAY, DEPLOY_DAY)
    )
    activity = spark.read.format("delta").load(lake.activity)
    per_day = (
        activity.groupBy(F.datediff("feature_ts", F.lit(day_ts(0))).alias("day"))
        .agg(
            F.count("*").alias("rows"),
            F.countDistinct("customer_id").alias("customers"),
            F.sum("views_7d").alias("views_7d"),
            F.sum("purchases_7d").alias("purchases_7d"),
        )
        .orderBy("day")
        .toPandas()
    )
    run.table(per_day, title="feature_store.customer_activity: one snapshot per day (first rows)", max_rows=4)
    run.check(
        "one row per primary key (customer_id, feature_ts): every customer once in every snapshot",
        (per_day["rows"] == per_day["customers"]).all() and (per_day["rows"] == len(world.customers)).all()
        and per_day["day"].tolist() == list(range(1, DEPLOY_DAY + 1)),
        f"{int(per_day['rows'].sum()):,} rows = {len(world.customers):,} customers × {DEPLOY_DAY} daily snapshots",
    )  # fmt: skip
    truth = expected_views_7d(scene.raw, range(1, DEPLOY_DAY + 1))
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
    try:
        spark.sql(
            f"INSERT INTO delta.`{lake.activity}` VALUES (NULL, TIMESTAMP'2026-03-01', 0, 0, 0, 0.0, 0, 0.0, 0.0)"
        )
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
        "ALTER TABLE main.feature_store.customer_activity ADD CONSTRAINT customer_activity_pk "
        "PRIMARY KEY (customer_id, feature_ts TIMESERIES)\n"
        "FeatureEngineeringClient().create_training_set(df=spine, label='label', feature_lookups=[\n"
        "  FeatureLookup('main.feature_store.customer_activity', lookup_key='customer_id', timestamp_lookup_key='label_ts'),\n"
        "  FeatureLookup('main.feature_store.customer_profile', lookup_key='customer_id', timestamp_lookup_key='label_ts')])",
        "primary keys with TIMESERIES and the Feature Engineering client exist only in Unity Catalog; "
        "locally the as-of join in the next step applies the same rule, written out",
    )


def build_training_sets(run: PatternRun, scene: Scene) -> tuple[DataFrame, pd.DataFrame]:
    """Step 3: as-of joined training (day 7) and held-out (day 14) sets; the naive join's leak measured.

    The set is computed in Spark and kept in memory; step 4 stores it in Snowflake, the governed
    copy the model is trained from (Pattern B).
    """
    run.step("Point-in-time training sets by as-of join, and what a naive join leaks")
    spark, lake, world = scene.spark, scene.lake, scene.world
    moments = pd.concat(
        [
            scoring_spine(world.customers, TRAIN_DAY).assign(split="train"),
            scoring_spine(world.customers, DEPLOY_DAY).assign(split="holdout"),
        ],
        ignore_index=True,
    )
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
    with single_threaded():
        train = stored_pdf[stored_pdf["split"] == "train"]
        honest, _ = cross_validated_auc(make_pipeline(baseline_estimator()), train, run.seed)
        leaky, _ = cross_validated_auc(make_pipeline(baseline_estimator()), naive, run.seed)
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
    """Step 4: the training set goes to Snowflake; Spark reads it back from there to learn."""
    from pyspark.sql import functions as F

    run.step("Pattern B: Snowflake stores the training data, Spark reads it from there")
    loaded = publish_training_set(sf, stored_pdf)
    from_snowflake = sf.fetch_df("SELECT * FROM TRAINING_SET ORDER BY SPLIT, CUSTOMER_ID")
    read_back = scene.spark.createDataFrame(from_snowflake.rename(columns=str.lower))
    expected = stored.select(*read_back.columns)
    differences = (
        expected.exceptAll(read_back)
        .withColumn("side", F.lit("missing"))
        .unionByName(read_back.exceptAll(expected).withColumn("side", F.lit("extra")))
        .groupBy("side")
        .count()
        .collect()
    )
    run.check(
        "Snowflake → Spark round trip is exact (exceptAll both ways)",
        loaded == len(stored_pdf) and not differences,
        f"{loaded:,} rows loaded with write_pandas; differences: {[r.asDict() for r in differences] or 'none'}",
    )
    run.note(
        "Locally the connector's Arrow fetch (fetch_pandas_all) feeds spark.createDataFrame. On Databricks read "
        "in parallel with spark.read.format('snowflake').options(sfUrl=…, sfDatabase=…, sfSchema=…, "
        "sfWarehouse=…).option('query', 'SELECT … FROM TRAINING_SET'), or train next to the data with Snowpark."
    )
    frame = read_back.toPandas()
    return frame[frame["split"] == "train"].reset_index(drop=True), frame[frame["split"] == "holdout"].reset_index(
        drop=True
    )


def train_baseline(store: MlflowStore, train: pd.DataFrame, holdout: pd.DataFrame, seed: int) -> TrainedModel:
    """The model to beat: logistic regression with library defaults, logged and registered."""
    import mlflow

    estimator = baseline_estimator()
    pipeline = make_pipeline(estimator)
    with mlflow.start_run(run_name="baseline"):
        cv_auc, _ = cross_validated_auc(pipeline, train, seed)
        pipeline.fit(train[list(FEATURES)], train["label"])
        model = TrainedModel(
            "baseline logreg", pipeline, params_of(estimator), cv_auc, holdout_metrics(pipeline, holdout)
        )
        log_and_register(
            store,
            model,
            train,
            tags={"role": "baseline", "trained_on": f"day {TRAIN_DAY}"},
            artifacts={"features.json": json.dumps(FEATURES)},
        )
    return model


def train_and_register(
    run: PatternRun, store: MlflowStore, train: pd.DataFrame, holdout: pd.DataFrame
) -> tuple[TrainedModel, TrainedModel]:
    """Step 5: MLflow store, baseline, automated search, held-out metrics, versions and aliases."""
    run.step("Training: a baseline and a small automated search, tracked and registered in MLflow")
    run.figure(
        "MLflow store first use (schema migration)",
        round(store.first_use_seconds, 2),
        "s",
        how=f"first call on a fresh {store.tracking_uri.split(':')[0]} store",
        key=True,
    )
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
    ensure_registered_model(store)
    with single_threaded():
        baseline = train_baseline(store, train, holdout, run.seed)
    best, board = search_and_register(store, train, holdout, label=f"day {TRAIN_DAY}", seed=run.seed)
    run.table(
        board.map(_fmt),
        title=f"Leaderboard: {CV_FOLDS}-fold CV ROC AUC on day-{TRAIN_DAY} moments (one nested run each)",
    )
    run.table(
        [
            {"version": f"v{m.version}", "model": m.label, "cv_auc": _fmt(m.cv_auc)}
            | {k.removeprefix("holdout_"): _fmt(v) for k, v in m.metrics.items()}
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


def batch_scoring(
    run: PatternRun, scene: Scene, sf: SnowflakeSession, store: MlflowStore, population: pd.DataFrame, *, day: int
) -> pd.DataFrame:
    """Score a population with the champion as a Spark UDF and replace its scores in Snowflake."""
    frame = scene.spark.createDataFrame(population[["customer_id", *FEATURES]])
    scored, version = batch_score(store, frame, CHAMPION)
    scored_pdf = scored.toPandas()
    written = write_scores(sf, scored_pdf, store, version=version, scored_at=day_ts(day), world=scene.world)
    again = write_scores(sf, scored_pdf, store, version=version, scored_at=day_ts(day), world=scene.world)
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
    run.step("Batch scoring: the registered champion as a Spark UDF, scores written to Snowflake")
    scored = batch_scoring(run, scene, sf, store, holdout, day=DEPLOY_DAY)
    version = str(store.client.get_model_version_by_alias(store.model_name, CHAMPION).version)
    targets = sf.fetch(TARGET_LIST_SQL, (version, day_ts(DEPLOY_DAY).to_pydatetime(), TARGET_FRACTION))
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
    run.step("Online serving: the same model version as a JSON endpoint on 127.0.0.1")
    sample = holdout.head(50)
    version = str(store.client.get_model_version_by_alias(store.model_name, CHAMPION).version)
    with ModelEndpoint(f"models:/{store.model_name}@{CHAMPION}", version=version) as endpoint:
        online = endpoint_scores(endpoint, sample)
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
    run.cloud_only_step(
        "databricks-serving",
        serving_endpoint_config(store, *versions),
        "a Databricks Model Serving endpoint provisions billable compute; locally MLflow's scoring app serves "
        "each version. Its traffic split is per request; for a per-customer split, route by hash as below",
    )


def ab_gate(
    run: PatternRun, store: MlflowStore, population: pd.DataFrame, world: EcommerceWorld, experiment: str
) -> AbResult:
    """An A/B test through the two endpoints, the significance gate, and the alias swap it allows."""
    result = run_experiment(run, store, population, world.purchase_propensity, experiment)
    show_experiment(run, result)
    if result.decision.promote:
        promote(store, result)
    expected = result.challenger_version if result.decision.promote else result.champion_version
    run.check(
        "the registry follows the gate (promoted iff significant and better)",
        alias_map(store).get(CHAMPION) == expected,
        json.dumps(alias_map(store)),
    )
    return result


def monitor_drift(run: PatternRun, scene: Scene, train: pd.DataFrame) -> pd.DataFrame:
    """Step 9: the feature job keeps running; PSI per feature against the training data."""
    run.step(f"Monitoring on day {MONITOR_DAY}: feature drift (PSI) against the training data")
    added = merge_features(
        scene.spark, scene.lake.activity, activity_snapshots(scene.events, scene.customers, DEPLOY_DAY + 1, RETRAIN_DAY)
    )
    run.say(f"the daily feature job ran on through day {RETRAIN_DAY}: {added['num_inserted_rows']:,} snapshot rows")
    activity = scene.spark.read.format("delta").load(scene.lake.activity)
    frames = snapshot_frames(activity, scene.profile, (DEPLOY_DAY, MONITOR_DAY, RETRAIN_DAY))
    before, now = f"psi day {DEPLOY_DAY}", f"psi day {MONITOR_DAY}"
    drift = drift_table(train, {before: frames[DEPLOY_DAY], now: frames[MONITOR_DAY]})
    run.table(
        drift.map(_fmt),
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


def retrain(run: PatternRun, scene: Scene, store: MlflowStore, holdout_auc: dict[str, float]) -> TrainedModel:
    """Step 10: new labels (day 21 moments, mature on day 29), the same search, a new challenger."""
    run.step(f"Automated retraining on day {RETRAIN_DAY}: fresh labels, a new version, the gate again")
    spine = scene.spark.createDataFrame(scoring_spine(scene.world.customers, MONITOR_DAY))
    frame = training_set(spine, scene.lake, scene.events).toPandas()
    run.check("the retraining set is point-in-time correct too", leak_count(frame) == 0, f"{len(frame):,} rows")
    champion = str(store.client.get_model_version_by_alias(store.model_name, CHAMPION).version)
    decayed = score_version(store, champion, frame)
    run.figure(
        f"champion v{champion} ROC AUC on day-{MONITOR_DAY} moments",
        round(decayed, 4),
        how=f"{holdout_auc[champion]:.4f} on day {DEPLOY_DAY}",
    )
    model, _ = search_and_register(store, frame, None, label=f"day {MONITOR_DAY} (retrain)", seed=run.seed)
    store.client.set_registered_model_alias(store.model_name, CHALLENGER, model.version)
    run.say(
        f"registered v{model.version} ({model.label}, CV ROC AUC {model.cv_auc:.4f} on the new data) as challenger; "
        f"champion v{champion} scores {decayed:.4f} on the same moments"
    )
    return model


def rollback_drill(run: PatternRun, store: MlflowStore, probe: pd.DataFrame) -> None:
    """Step 11: move `champion` back to the version it replaced, verify serving, move it forward."""
    client = store.client
    champion = str(client.get_model_version_by_alias(store.model_name, CHAMPION).version)
    replaced = client.get_model_version(store.model_name, champion).tags.get("replaced_version")
    if not replaced:
        run.say("no promotion happened in this run, so there is nothing to roll back to")
        return
    client.set_registered_model_alias(store.model_name, CHAMPION, replaced)
    rolled_back = serves_version(store, replaced, probe)
    client.set_registered_model_alias(store.model_name, CHAMPION, champion)
    restored = serves_version(store, champion, probe)
    run.check(
        f"rollback: champion → v{replaced} serves at once; roll forward → v{champion} again",
        rolled_back and restored,
        "one alias move each way; an endpoint resolves models:/…@champion when it deploys",
    )


def experiment_on_deploy_day(
    run: PatternRun, store: MlflowStore, holdout: pd.DataFrame, world: EcommerceWorld, versions: tuple[str, str]
) -> AbResult:
    """Step 8: the split survives a restart; then the first A/B test and its gate."""
    run.step(f"A/B test on day {DEPLOY_DAY}: champion v{versions[0]} vs challenger v{versions[1]}")
    experiment = f"gate-1-day-{DEPLOY_DAY}"
    stable, switched = assignment_survives_restart(holdout["customer_id"].tolist(), experiment)
    run.check(
        "fresh processes put every customer in the same arm (sha256 split)",
        stable,
        f"with Python's salted hash() two processes disagree on {switched:,} of {len(holdout):,} customers",
    )
    result = ab_gate(run, store, holdout, world, experiment)
    run.figure("A/B gate 1 p-value", round(result.test.p_value, 4), key=True, how=f"lift {result.test.lift:+.4f}")
    return result


def model_lifecycle(
    run: PatternRun,
    scene: Scene,
    sf: SnowflakeSession,
    store: MlflowStore,
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
) -> None:
    """Steps 5-11: train, register, serve, experiment, monitor, retrain, experiment again, roll back."""
    baseline, best = train_and_register(run, store, train, holdout)
    scored = serve_batch(run, scene, sf, store, holdout)
    serve_online(run, store, holdout, scored, (baseline.version, best.version))
    experiment_on_deploy_day(run, store, holdout, scene.world, (baseline.version, best.version))

    population = monitor_drift(run, scene, train)
    retrained = retrain(run, scene, store, {m.version: m.metrics["holdout_auc"] for m in (baseline, best)})
    second = ab_gate(run, store, population, scene.world, f"gate-2-day-{RETRAIN_DAY}")
    run.figure("A/B gate 2 p-value", round(second.test.p_value, 4), key=True, how=f"lift {second.test.lift:+.4f}")

    run.step("Rollback drill, and the current champion's scores in Snowflake")
    rollback_drill(run, store, population.head(20))
    batch_scoring(run, scene, sf, store, population, day=RETRAIN_DAY)
    history = sf.fetch(
        "SELECT MODEL_VERSION, SCORED_AT, COUNT(*) AS CUSTOMERS, ROUND(AVG(SCORE), 4) AS MEAN_SCORE "
        "FROM PROPENSITY_SCORES GROUP BY 1, 2 ORDER BY 2"
    )
    run.table(history, title="In Snowflake: PROPENSITY_SCORES by version and day")
    registry = registry_table(store)
    run.table(registry, title=f"Registry: {store.model_name}")
    run.check(
        f"v{retrained.version} and every other version trace back to their MLflow runs",
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
            model_lifecycle(run, scene, sf, store, train=train, holdout=holdout)
    computed.unpersist()
    scene.events.unpersist()


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=120_000)


if __name__ == "__main__":
    raise SystemExit(main())
