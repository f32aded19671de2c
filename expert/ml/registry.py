"""Reading the MLflow model registry: what an alias points at, every version's lineage, how a version scores.

Why separate from the pattern: integration/03 teaches the moves (register a version, point
`champion` / `challenger` at versions, swap them, roll back); these are the reads that prove each
move, the same against a local SQLite registry or Unity Catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from expert.ml.serving import ModelEndpoint, endpoint_scores
from expert.ml.tracking import MlflowStore, trusted_model_loading


def alias_version(store: MlflowStore, alias: str) -> str:
    """The version an alias points at now: what `models:/<name>@<alias>` resolves to."""
    return str(store.client.get_model_version_by_alias(store.model_name, alias).version)


def alias_map(store: MlflowStore) -> dict[str, str]:
    """Every alias of the registered model → its version."""
    model = store.client.get_registered_model(store.model_name)
    return {alias: str(version) for alias, version in model.aliases.items()}


def registry_table(store: MlflowStore) -> list[dict[str, Any]]:
    """Every version with its aliases, role and the run that produced it (lineage)."""
    versions = store.client.search_model_versions(f"name = '{store.model_name}'")
    aliases: dict[str, list[str]] = {}
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


def predict_version(store: MlflowStore, version: str, frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """P(class 1) per row from one registered version, loaded in this process."""
    import mlflow.pyfunc

    with trusted_model_loading():
        model = mlflow.pyfunc.load_model(f"models:/{store.model_name}/{version}")
    return np.asarray(model.predict(frame[list(columns)]))[:, 1]


def score_version(store: MlflowStore, version: str, frame: pd.DataFrame, columns: Sequence[str]) -> float:
    """ROC AUC of one registered version on labelled rows (the performance monitor)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(frame["label"], predict_version(store, version, frame, columns)))


def serves_version(
    store: MlflowStore, alias: str, version: str, probe: pd.DataFrame, columns: Sequence[str], *, batch: int
) -> bool:
    """Deploy `models:/<name>@<alias>` afresh and check it resolves to `version` and answers exactly like it."""
    expected = predict_version(store, version, probe, columns)
    resolved = alias_version(store, alias)
    with ModelEndpoint(f"models:/{store.model_name}@{alias}", version=resolved) as endpoint:
        served = endpoint_scores(endpoint, probe, columns, batch)
    return resolved == version and bool(np.allclose(served, expected, rtol=0, atol=1e-12))
