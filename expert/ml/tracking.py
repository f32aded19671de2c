"""MLflow tracking and model registry: a SQLite file in the run's workdir, or a real server.

Why SQLite by default: MLflow 3 refuses the old `file:` store unless told otherwise (it is in
maintenance mode), and the model registry (versions, aliases) needs a database store anyway.
`mlflow-skinny` plus SQLAlchemy and Alembic is enough for it; the first use of a fresh file runs
MLflow's schema migrations, which this module measures rather than hides. With
`MLFLOW_TRACKING_URI` set (`databricks`, `http://...`), the same calls go to that server instead.

MLflow is chatty on the console. Its own logger is set to WARNING (errors and unexpected warnings
still show) and exactly two known warnings are filtered, each for a stated reason
(`KNOWN_WARNINGS`), so the pattern's narration stays readable without hiding a real problem.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from expert.runtime.config import Settings
from expert.runtime.errors import ExpertError
from expert.runtime.timing import stopwatch

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPORTED_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")
"""Environment variables MLflow sets on its own (for subprocesses) when URIs or the experiment change."""
LOCAL_EXPERIMENT = "ml_platform"
DATABRICKS_EXPERIMENT = "/Shared/lakehouse-expert-patterns/ml_platform"
DEFAULT_MODEL_NAME = "purchase_propensity"
TRUST_ENV = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"

KNOWN_WARNINGS: dict[str, tuple[str, str]] = {
    "cloudpickle": (
        "Saving scikit-learn models in the pickle or cloudpickle format",
        "models are saved with cloudpickle, MLflow's default on Databricks; loading any format "
        f"(skops too) runs code from the artifact, so MLflow gates it behind {TRUST_ENV}, which "
        "this pattern sets only while it loads models from its own registry",
    ),
    "local env": (
        'Calling `spark_udf()` with `env_manager="local"`',
        "the Spark workers run the same Python environment that trained the model, so "
        "env_manager='local' is exact here (on a cluster, pin the same requirements on it)",
    ),
}


class _KnownWarnings(logging.Filter):
    """Drops only the warnings listed in `KNOWN_WARNINGS`; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(prefix) for prefix, _ in KNOWN_WARNINGS.values())


def quiet_mlflow_logging() -> None:
    """MLflow's INFO chatter off, errors and unexpected warnings on, the two known warnings filtered."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    for name in ("mlflow.sklearn", "mlflow.pyfunc"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _KnownWarnings) for f in logger.filters):
            logger.addFilter(_KnownWarnings())


@contextlib.contextmanager
def trusted_model_loading() -> Iterator[None]:
    """Allow MLflow to deserialize models for the duration of the block (our own registry only)."""
    previous = os.environ.get(TRUST_ENV)
    os.environ[TRUST_ENV] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TRUST_ENV, None)
        else:
            os.environ[TRUST_ENV] = previous


@dataclass(frozen=True)
class MlflowStore:
    """Where runs and models live for this run, and what its first use cost."""

    tracking_uri: str
    registry_uri: str
    experiment_name: str
    experiment_id: str
    model_name: str
    is_local: bool
    first_use_seconds: float
    warm_call_seconds: float
    client: MlflowClient


@contextlib.contextmanager
def mlflow_store(settings: Settings, workdir: Path) -> Iterator[MlflowStore]:
    """MLflow pointed at the configured server, or at `sqlite:///<workdir>/mlflow.db`, for the block.

    On exit the process-wide URIs and the environment variables MLflow exports for subprocesses
    are put back, so a later `load_settings()` in the same process (the next pattern of `expert
    run`) still sees only what the learner configured.
    """
    import mlflow
    from mlflow import MlflowClient

    quiet_mlflow_logging()
    config = settings.mlflow
    if config.is_cloud:
        tracking_uri = config.get("MLFLOW_TRACKING_URI") or ""
        registry_uri = config.get("MLFLOW_REGISTRY_URI") or tracking_uri
        on_databricks = tracking_uri.startswith("databricks")
        experiment = config.get("MLFLOW_EXPERIMENT_NAME") or (
            DATABRICKS_EXPERIMENT if on_databricks else LOCAL_EXPERIMENT
        )
        model_name = config.get("MLFLOW_REGISTERED_MODEL_NAME") or DEFAULT_MODEL_NAME
        if registry_uri.startswith("databricks-uc") and model_name.count(".") != 2:
            raise ExpertError(
                f"Unity Catalog registers models under catalog.schema.model, not {model_name!r}",
                "set MLFLOW_REGISTERED_MODEL_NAME=<catalog>.<schema>.purchase_propensity in .env",
            )
        exported = _databricks_auth(settings) if on_databricks else {}
        artifact_location = None
    else:
        tracking_uri = registry_uri = f"sqlite:///{workdir / 'mlflow.db'}"
        experiment, model_name = LOCAL_EXPERIMENT, DEFAULT_MODEL_NAME
        artifact_location = (workdir / "mlartifacts").as_uri()
        exported = {}
        _forget_cached_stores(tracking_uri)
    with using_uris(tracking_uri, registry_uri), _environment(exported):
        with stopwatch() as first_use:
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
            existing = client.get_experiment_by_name(experiment)
            client.search_registered_models(max_results=1)
        with stopwatch() as warm:
            client.get_experiment_by_name(experiment)
            client.search_registered_models(max_results=1)
        experiment_id = (
            existing.experiment_id
            if existing is not None
            else client.create_experiment(experiment, artifact_location=artifact_location)
        )
        mlflow.set_experiment(experiment_id=experiment_id)
        yield MlflowStore(
            tracking_uri,
            registry_uri,
            experiment,
            experiment_id,
            model_name,
            not config.is_cloud,
            first_use.seconds,
            warm.seconds,
            client,
        )


@contextlib.contextmanager
def using_uris(tracking_uri: str, registry_uri: str) -> Iterator[None]:
    """Set MLflow's process-wide tracking and registry URIs for the block, then restore them.

    `mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI (and `set_experiment` exports
    MLFLOW_EXPERIMENT_ID); left behind, they would make this process look configured for a real
    MLflow server.
    """
    import mlflow

    saved = {key: os.environ.get(key) for key in EXPORTED_VARIABLES}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _forget_cached_stores(uri: str) -> None:
    """Drop what MLflow caches per URI for the life of the process: stores and database engines.

    Every run deletes and recreates its SQLite file; a second run in the same process (a notebook,
    the timing harness) must migrate the new file, not write through an engine still attached to
    the deleted one. These caches are MLflow internals, so each is looked up defensively.
    """
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistrySqlStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingSqlStore
    from mlflow.tracking._model_registry.registry import ModelRegistryStoreRegistry
    from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry

    for registry in (TrackingStoreRegistry, ModelRegistryStoreRegistry):
        cached = getattr(registry, "_get_store_with_resolved_uri", None)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()
    for store_class in (TrackingSqlStore, RegistrySqlStore):
        engine = getattr(store_class, "_engine_map", {}).pop(uri, None)
        if engine is not None:
            engine.dispose()


def file_store_refusal(directory: Path) -> str:
    """The error MLflow 3 raises for a `file:` tracking store (empty if it accepted it)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient(tracking_uri=directory.as_uri()).search_experiments()
    except MlflowException as exc:
        return str(exc.message).split(". ")[0]
    return ""


def _databricks_auth(settings: Settings) -> dict[str, str]:
    """The DATABRICKS_* values MLflow's Databricks client reads from the environment (from `.env`)."""
    workspace = settings.databricks
    if not workspace.is_cloud:
        return {}
    values = {
        key: workspace.get(key) or "" for key in ("DATABRICKS_HOST", "DATABRICKS_CLIENT_ID") if workspace.get(key)
    }
    for key in ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET"):
        secret = workspace.secret(key)
        if secret is not None:
            values[key] = secret.get_secret_value()
    return values


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Export `values` (without overriding what the process already has) for the block only."""
    added = [key for key in values if key not in os.environ]
    os.environ.update({key: values[key] for key in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
