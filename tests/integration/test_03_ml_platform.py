"""integration/03 ML platform: leakage, registry state, serving parity and the A/B decision logic.

Ground truth comes from outside the pipeline under test: features and labels are recomputed with
pandas from the generator's events, p-values with scipy's chi-square test, the registry is read
back through a fresh MLflow client and the scores through a fresh Snowflake session.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from expert.ml import stats
from expert.ml.campaign import campaign_traffic
from expert.ml.features import scoring_spine
from expert.runtime.data import EPOCH, EcommerceWorld
from expert.runtime.pattern import load_module, select_patterns

PATTERN = "integration/03"


@pytest.fixture(scope="module")
def ml():  # type: ignore[no-untyped-def]
    (meta,) = select_patterns(PATTERN)
    return load_module(meta)


@pytest.fixture
def outcome(pattern_run):  # type: ignore[no-untyped-def]
    result = pattern_run(PATTERN)
    assert result.exit_code == 0, result.report.error
    return result


@pytest.fixture
def warehouse(outcome) -> dict[str, pd.DataFrame]:  # type: ignore[no-untyped-def]
    """The pattern's Snowflake tables, read back through a fresh session on its local database."""
    from expert.runtime.config import SNOWFLAKE, resolve_service
    from expert.runtime.snowflake import snowflake_session

    with snowflake_session(
        resolve_service(SNOWFLAKE, {}), db_path=outcome.workdir / "snowflake", database="EXPERT", schema="ML"
    ) as sf:
        return {
            name: sf.fetch_df(f"SELECT * FROM {name}").rename(columns=str.lower)
            for name in ("TRAINING_SET", "PROPENSITY_SCORES")
        }


@pytest.fixture
def registry(outcome):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    uri = f"sqlite:///{outcome.workdir / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture
def pattern_uris(outcome):  # type: ignore[no-untyped-def]
    """MLflow's process-wide URIs pointed at the pattern's store for one test, then restored."""
    from expert.ml.tracking import using_uris

    uri = f"sqlite:///{outcome.workdir / 'mlflow.db'}"
    with using_uris(uri, uri):
        yield uri


# --- the as-of join on a hand-made table -----------------------------------------------------


def test_as_of_join_takes_the_latest_row_at_or_before_the_label_time(spark, ml) -> None:  # type: ignore[no-untyped-def]
    from pyspark.testing import assertDataFrameEqual

    t = [datetime(2026, 1, d) for d in (1, 2, 3)]
    features = spark.createDataFrame(
        pd.DataFrame({"customer_id": [1, 1, 1, 2], "feature_ts": [t[0], t[1], t[2], t[2]], "views_7d": [10, 20, 30, 5]})
    )
    spine = spark.createDataFrame(
        pd.DataFrame(
            {
                "customer_id": [1, 1, 2],
                "label_ts": [
                    t[1] + timedelta(hours=5),
                    t[1],
                    t[1],
                ],  # between t1 and t2 / exactly t1 / before any row
            }
        )
    )
    joined = ml.as_of_join(spine, features, "activity").select(
        "customer_id", "label_ts", "activity_feature_ts", "views_7d"
    )
    expected = spark.createDataFrame(
        [(1, t[1] + timedelta(hours=5), t[1], 20), (1, t[1], t[1], 20), (2, t[1], None, None)],
        "customer_id long, label_ts timestamp, activity_feature_ts timestamp, views_7d long",
    )
    assertDataFrameEqual(joined, expected)
    naive = ml.latest_value_join(spine, features, "activity")
    assert naive.where("activity_feature_ts > label_ts").count() == 3, "the naive join takes t3 for everyone"


# --- the pattern's own outputs ---------------------------------------------------------------


def test_pattern_passes_with_every_invariant(outcome) -> None:  # type: ignore[no-untyped-def]
    report = outcome.report
    assert report.passed
    names = [c.name for c in report.checks]
    for expected in (
        "no feature value observed after its label's timestamp (as-of join)",
        "the naive latest-value join WOULD leak on this data",
        "online and batch predictions agree for the same rows",
        "Snowflake → Spark round trip is exact (exceptAll both ways)",
    ):
        assert expected in names
    assert len(report.cloud_only) == 2
    assert report.value("max PSI at monitoring") >= 0.25


def test_training_set_is_point_in_time_correct_against_pandas(warehouse, ml) -> None:  # type: ignore[no-untyped-def]
    """Recompute every feature and label of the training set in Snowflake from the raw events with pandas."""
    stored = warehouse["TRAINING_SET"]
    assert (stored["activity_feature_ts"] <= stored["label_ts"]).all()
    world = EcommerceWorld(120_000, seed=42)
    campaign = campaign_traffic(
        world, start_day=ml.DEPLOY_DAY, share=ml.CAMPAIGN_SHARE, views_per_day=ml.CAMPAIGN_VIEWS_PER_DAY
    )
    raw = pd.concat([world.events, campaign], ignore_index=True)
    raw["event_ts"] = raw["event_ts"].dt.tz_convert(None)
    epoch = pd.Timestamp(EPOCH).tz_convert(None)
    raw["day"] = (raw["event_ts"] - epoch).dt.days
    snapshot_day = (stored["label_ts"] - epoch).dt.days.to_numpy()  # the snapshot at midnight of the label's day
    rows = stored["customer_id"].to_numpy() - 1
    for kind, column in (("view", "views_7d"), ("cart", "carts_7d"), ("purchase", "purchases_7d")):
        counts = np.zeros((len(world.customers), int(raw["day"].max()) + 2), dtype=int)
        hits = raw[raw["event_type"] == kind]
        np.add.at(counts, (hits["customer_id"].to_numpy() - 1, hits["day"].to_numpy() + 1), 1)
        cumulative = counts.cumsum(axis=1)  # cumulative[:, d] = events on days < d
        expected = cumulative[rows, snapshot_day] - cumulative[rows, np.maximum(snapshot_day - 7, 0)]
        assert stored[column].astype(int).tolist() == expected.tolist(), column
    purchases = raw[raw["event_type"] == "purchase"].groupby("customer_id")["event_ts"].apply(np.sort)
    horizon = timedelta(days=7)
    labels = [
        int(c in purchases.index and bool(((purchases[c] >= t) & (purchases[c] < t + horizon)).any()))
        for c, t in zip(stored["customer_id"], stored["label_ts"], strict=True)
    ]
    assert stored["label"].tolist() == labels


def test_a_naive_join_on_the_same_tables_would_leak(spark, outcome, ml) -> None:  # type: ignore[no-untyped-def]
    lake = ml.Lake(
        *(str(outcome.workdir / "lake" / "feature_store" / n) for n in ("customer_activity", "customer_profile"))
    )
    world = EcommerceWorld(120_000, seed=42)
    spine = spark.createDataFrame(scoring_spine(world.customers, ml.TRAIN_DAY))
    events = spark.createDataFrame(world.events[["customer_id", "event_type", "event_ts"]])
    honest = ml.training_set(spine, lake, events).toPandas()
    naive = ml.training_set(spine, lake, events, naive=True).toPandas()
    assert ml.leak_count(honest) == 0
    assert ml.leak_count(naive) == len(world.customers)


def test_registry_versions_aliases_and_lineage(registry, outcome, pattern_uris) -> None:  # type: ignore[no-untyped-def]
    import mlflow.models

    name = "purchase_propensity"
    versions = sorted(registry.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    assert [v.tags["role"] for v in versions] == ["baseline", "automl best", "automl best"]
    aliases = registry.get_registered_model(name).aliases
    champion = aliases["champion"]
    ab_runs = registry.search_runs(
        [registry.get_experiment_by_name("ml_platform").experiment_id],
        "attributes.run_name LIKE 'ab %'",
        order_by=["attributes.start_time ASC"],
    )
    assert len(ab_runs) == 2
    expected_champion = "1"
    for ab in ab_runs:
        if ab.data.metrics["promoted"] == 1.0:
            expected_champion = ab.data.params["challenger"]
    assert str(champion) == expected_champion
    if expected_champion != "1":
        replaced = registry.get_model_version(name, str(champion)).tags["replaced_version"]
        assert int(replaced) < int(champion)
    for version in versions:
        run = registry.get_run(version.run_id)
        assert "cv_auc" in run.data.metrics and run.data.params["estimator"]
        info = mlflow.models.get_model_info(f"models:/{name}/{version.version}")
        assert info.run_id == version.run_id
        assert info.signature is not None and {"sklearn", "python_function"} <= set(info.flavors)
        assert info.saved_input_example_info is not None


def test_ab_runs_record_decisions_that_follow_the_gate(registry) -> None:  # type: ignore[no-untyped-def]
    runs = registry.search_runs(
        [registry.get_experiment_by_name("ml_platform").experiment_id], "attributes.run_name LIKE 'ab %'"
    )
    for ab in runs:
        m = ab.data.metrics
        test = stats.two_proportion_ztest(
            int(m["conversions_champion"]),
            int(m["n_champion"]),
            int(m["conversions_challenger"]),
            int(m["n_challenger"]),
        )
        assert test.p_value == pytest.approx(m["p_value"])
        assert bool(m["promoted"]) == (test.p_value < 0.05 and test.lift > 0)


def test_snowflake_scores_equal_the_registered_models_predictions(warehouse, ml, pattern_uris) -> None:  # type: ignore[no-untyped-def]
    import mlflow.pyfunc

    from expert.ml.tracking import trusted_model_loading

    holdout = warehouse["TRAINING_SET"].query("split == 'holdout'")
    scores = warehouse["PROPENSITY_SCORES"]
    scores = scores[scores["scored_at"] == pd.Timestamp(EPOCH + timedelta(days=ml.DEPLOY_DAY)).tz_convert(None)]
    assert scores["customer_id"].is_unique and len(scores) == len(holdout)
    (version,) = scores["model_version"].unique()
    with trusted_model_loading():
        model = mlflow.pyfunc.load_model(f"models:/purchase_propensity/{version}")
    expected = np.asarray(model.predict(holdout[list(ml.FEATURES)]))[:, 1]
    lookup = scores.set_index("customer_id")["score"].reindex(holdout["customer_id"]).to_numpy()
    assert np.allclose(lookup, expected, atol=1e-12)


def test_endpoint_rejects_a_request_that_breaks_the_signature(pattern_uris) -> None:  # type: ignore[no-untyped-def]

    from expert.ml.serving import ModelEndpoint
    from expert.runtime.errors import ExpertError

    with (
        ModelEndpoint("models:/purchase_propensity@champion", version="champion") as endpoint,
        pytest.raises(ExpertError, match="HTTP 400"),
    ):
        endpoint.predict([{"views_7d": 1.0}])


def test_mlflow_store_survives_a_rerun_and_leaves_no_environment_behind(tmp_path) -> None:
    """A rerun deletes the SQLite file; the store must migrate the new one, and MLflow's exported
    variables must not make the next `load_settings()` believe a real server is configured."""
    import os
    import shutil

    from expert.ml.tracking import EXPORTED_VARIABLES, mlflow_store
    from expert.runtime.config import load_settings

    before = {key: os.environ.get(key) for key in EXPORTED_VARIABLES}
    for attempt in range(2):
        shutil.rmtree(tmp_path)
        tmp_path.mkdir()
        with mlflow_store(load_settings(), tmp_path) as store:
            assert store.is_local and os.environ["MLFLOW_TRACKING_URI"] == store.tracking_uri
            store.client.create_registered_model(f"model_{attempt}")
            assert [m.name for m in store.client.search_registered_models()] == [f"model_{attempt}"]
        assert {key: os.environ.get(key) for key in EXPORTED_VARIABLES} == before
    assert not load_settings().mlflow.is_cloud


def test_too_few_rows_is_a_setup_error_not_a_crash(ml, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EXPERT_WORK_ROOT", str(tmp_path))
    assert ml.main(["--rows", "5000", "--quiet"]) == 2
