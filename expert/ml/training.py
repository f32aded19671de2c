"""Training for integration/03: a scikit-learn pipeline, a small cross-validated search, MLflow logging.

Why scikit-learn and not Spark ML here: Spark builds the features and the point-in-time training
set, and scores at scale (`mlflow.pyfunc.spark_udf`); the training set itself is one row per
customer per scoring moment, a few thousand rows that fit in one process. A scikit-learn pipeline
trains on that in one process, cross-validates in one call, and serves from MLflow's scoring app
without a JVM: a common split of the work (single-node training on the driver, distributed
scoring).

- `make_pipeline`: scaling and one-hot encoding travel inside the model, so serving sends raw
  feature values.
- `search_and_register`: every candidate cross-validated in its own nested MLflow run, the best
  refit, evaluated on a later period, logged with signature + input example, registered.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from expert.ml import stats
from expert.ml.tracking import MlflowStore

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class ModelInputs:
    """The model's input columns: numeric ones are scaled, categorical ones one-hot encoded."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


@dataclass
class TrainedModel:
    """A fitted pipeline, how it scored, and its registry version once registered."""

    label: str
    pipeline: Pipeline
    params: dict[str, Any]
    cv_auc: float
    metrics: dict[str, float]
    version: str = ""


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """sklearn on one thread: on small data, thread start-up costs more than it gives (and Spark shares the cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def make_pipeline(estimator: Any, inputs: ModelInputs) -> Pipeline:
    """Scaling + one-hot encoding travel inside the model, so serving sends raw feature values."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prepare = ColumnTransformer(
        [
            ("numeric", StandardScaler(), list(inputs.numeric)),
            ("segment", OneHotEncoder(handle_unknown="ignore"), list(inputs.categorical)),
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
    """The model to beat: logistic regression with the library's defaults."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def cross_validated_auc(
    pipeline: Pipeline, frame: pd.DataFrame, inputs: ModelInputs, *, seed: int, folds: int
) -> tuple[float, float]:
    """Mean and spread of ROC AUC over stratified, shuffled folds."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(pipeline, frame[inputs.columns], frame["label"], cv=splits, scoring="roc_auc")
    return float(scores.mean()), float(scores.std())


def holdout_metrics(pipeline: Pipeline, frame: pd.DataFrame, inputs: ModelInputs, fraction: float) -> dict[str, float]:
    """ROC AUC, log loss and precision in the top `fraction` (what a campaign budget buys)."""
    from sklearn.metrics import log_loss, roc_auc_score

    scores = pipeline.predict_proba(frame[inputs.columns])[:, 1]
    return {
        "holdout_auc": float(roc_auc_score(frame["label"], scores)),
        "holdout_log_loss": float(log_loss(frame["label"], scores)),
        f"holdout_precision_at_{fraction:.0%}".replace("%", "pct"): stats.precision_at_fraction(
            frame["label"], scores, fraction
        ),
    }


def params_of(estimator: Any) -> dict[str, Any]:
    keys = ("C", "learning_rate", "max_depth", "max_iter")
    return {"estimator": type(estimator).__name__} | {
        k: v for k, v in estimator.get_params().items() if k in keys and v is not None
    }


def log_and_register(
    store: MlflowStore,
    model: TrainedModel,
    train: pd.DataFrame,
    inputs: ModelInputs,
    *,
    tags: dict[str, str],
    artifacts: dict[str, str],
) -> None:
    """Log the fitted pipeline with signature + input example in the active run, and register it as a new version."""
    from importlib.metadata import version

    import mlflow
    from mlflow.models import infer_signature

    example = train[inputs.columns].head(5)
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


def ensure_registered_model(store: MlflowStore, description: str, tags: dict[str, str]) -> None:
    """Create the registered model once (a rerun against a real server finds it there)."""
    from mlflow.exceptions import MlflowException

    try:
        store.client.create_registered_model(store.model_name, tags=tags, description=description)
    except MlflowException as exc:
        if "already exists" not in str(exc).lower():
            raise


def train_baseline(
    store: MlflowStore,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    inputs: ModelInputs,
    *,
    label: str,
    seed: int,
    folds: int,
    fraction: float,
) -> TrainedModel:
    """The model to beat: logistic regression with library defaults, logged in its own run and registered."""
    import mlflow

    estimator = baseline_estimator()
    pipeline = make_pipeline(estimator, inputs)
    with mlflow.start_run(run_name="baseline"):
        cv_auc, _ = cross_validated_auc(pipeline, train, inputs, seed=seed, folds=folds)
        pipeline.fit(train[inputs.columns], train["label"])
        metrics = holdout_metrics(pipeline, holdout, inputs, fraction)
        model = TrainedModel("baseline logreg", pipeline, params_of(estimator), cv_auc, metrics)
        tags = {"role": "baseline", "trained_on": label}
        log_and_register(
            store, model, train, inputs, tags=tags, artifacts={"features.json": json.dumps(inputs.columns)}
        )
    return model


def search_and_register(
    store: MlflowStore,
    train: pd.DataFrame,
    holdout: pd.DataFrame | None,
    inputs: ModelInputs,
    *,
    label: str,
    seed: int,
    folds: int,
    fraction: float,
) -> tuple[TrainedModel, pd.DataFrame]:
    """Cross-validate every candidate (one nested MLflow run each), refit the best, register it."""
    import mlflow

    rows = []
    with mlflow.start_run(run_name=label), single_threaded():
        for name, estimator in candidates(seed).items():
            pipeline = make_pipeline(estimator, inputs)
            with mlflow.start_run(run_name=name, nested=True):
                mean, spread = cross_validated_auc(pipeline, train, inputs, seed=seed, folds=folds)
                mlflow.log_params(params_of(estimator))
                mlflow.log_metrics({"cv_auc": mean, "cv_auc_std": spread})
            rows.append({"candidate": name, "cv_auc": round(mean, 4), "cv_auc_std": round(spread, 4)})
        board = pd.DataFrame(rows).sort_values("cv_auc", ascending=False, kind="stable").reset_index(drop=True)
        best_name = str(board.loc[0, "candidate"])
        best = candidates(seed)[best_name]
        pipeline = make_pipeline(best, inputs).fit(train[inputs.columns], train["label"])
        metrics = holdout_metrics(pipeline, holdout, inputs, fraction) if holdout is not None else {}
        model = TrainedModel(best_name, pipeline, params_of(best), float(board.loc[0, "cv_auc"]), metrics)
        log_and_register(
            store,
            model,
            train,
            inputs,
            tags={"role": "automl best", "trained_on": label},
            artifacts={"leaderboard.csv": board.to_csv(index=False), "features.json": json.dumps(inputs.columns)},
        )
    return model, board


@dataclass(frozen=True)
class Plan:
    """How every model of a run is trained and judged: its inputs, seed, CV folds and targeting fraction."""

    inputs: ModelInputs
    seed: int
    folds: int
    fraction: float

    def baseline(self, store: MlflowStore, train: pd.DataFrame, holdout: pd.DataFrame, *, label: str) -> TrainedModel:
        with single_threaded():
            return train_baseline(
                store,
                train,
                holdout,
                self.inputs,
                label=label,
                seed=self.seed,
                folds=self.folds,
                fraction=self.fraction,
            )

    def search(
        self, store: MlflowStore, train: pd.DataFrame, holdout: pd.DataFrame | None, *, label: str
    ) -> tuple[TrainedModel, pd.DataFrame]:
        return search_and_register(
            store, train, holdout, self.inputs, label=label, seed=self.seed, folds=self.folds, fraction=self.fraction
        )

    def cv_auc(self, estimator: Any, frame: pd.DataFrame) -> float:
        """Cross-validated ROC AUC of `estimator` in the standard pipeline, on one thread."""
        with single_threaded():
            pipeline = make_pipeline(estimator, self.inputs)
            return cross_validated_auc(pipeline, frame, self.inputs, seed=self.seed, folds=self.folds)[0]
