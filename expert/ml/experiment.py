"""An A/B test of two registered model versions, served over HTTP, with outcomes simulated from known truth.

Why simulated outcomes: on a laptop there are no customers to make offers to. The generator knows
each customer's hidden propensity to buy, so the experiment draws each targeted customer's
response from it (deterministically, by hash): the arm whose model ranks the real buyers higher
converts more, and the pattern can print the true expected rate next to the measured one.

The mechanics are the production ones: customers are split by a stateless sha256 hash, each arm's
model scores its customers through its own endpoint, each arm targets its top `target_fraction`,
and the conversions go into a two-proportion z-test and the promotion gate (`expert.ml.stats`).
Every experiment is logged as an MLflow run, and both versions are tagged with the decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from expert.ml import stats
from expert.ml.registry import alias_version
from expert.ml.serving import ModelEndpoint, endpoint_scores
from expert.ml.tracking import MlflowStore


@dataclass(frozen=True)
class ExperimentDesign:
    """Who gets the offer, how a targeted customer responds, and how the result is judged.

    A targeted customer converts with probability sigmoid(offer_intercept + offer_slope * propensity).
    """

    features: Sequence[str]
    target_fraction: float
    offer_intercept: float
    offer_slope: float
    alpha: float
    request_batch: int

    def conversion_probability(self, propensity: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(self.offer_intercept + self.offer_slope * propensity)))


@dataclass(frozen=True)
class AbResult:
    experiment: str
    champion_version: str
    challenger_version: str
    arms: tuple[int, int]
    balance_p: float
    test: stats.TwoProportionTest
    decision: stats.GateDecision
    mde: float
    true_rate_a: float
    true_rate_b: float

    def arm_rows(self) -> list[dict[str, object]]:
        """One row per arm: targeted, converted, measured rate, and the true expected rate (4 decimals)."""
        t = self.test
        return [
            {"arm": f"A champion v{self.champion_version}", "targeted": t.n_a, "converted": t.conversions_a,
             "rate": f"{t.rate_a:.4f}", "true expected rate": f"{self.true_rate_a:.4f}"},
            {"arm": f"B challenger v{self.challenger_version}", "targeted": t.n_b, "converted": t.conversions_b,
             "rate": f"{t.rate_b:.4f}", "true expected rate": f"{self.true_rate_b:.4f}"},
        ]  # fmt: skip


def run_experiment(
    store: MlflowStore,
    population: pd.DataFrame,
    propensity: pd.Series,
    experiment: str,
    design: ExperimentDesign,
    *,
    aliases: tuple[str, str],
) -> AbResult:
    """Split `population` between the versions behind `aliases` (champion, challenger), target, simulate, test."""
    import mlflow
    from scipy.stats import binomtest

    champion, challenger = (alias_version(store, alias) for alias in aliases)
    arms = population["customer_id"].map(lambda c: stats.assign_arm(c, experiment))
    n_b = int((arms == stats.CHALLENGER_ARM).sum())
    balance = float(binomtest(n_b, len(arms), 0.5).pvalue)
    outcome = {}
    for arm, version in ((stats.CHAMPION_ARM, champion), (stats.CHALLENGER_ARM, challenger)):
        members = population[arms == arm]
        with ModelEndpoint(f"models:/{store.model_name}/{version}", version=version) as endpoint:
            scores = endpoint_scores(endpoint, members, design.features, design.request_batch)
        k = math.ceil(len(members) * design.target_fraction)
        targeted = members["customer_id"].to_numpy()[np.argsort(-scores, kind="stable")[:k]]
        p_true = design.conversion_probability(propensity.reindex(targeted).to_numpy())
        draws = np.array([stats.bucket(c, f"{experiment}:outcome") for c in targeted])
        outcome[arm] = (int((draws < p_true).sum()), k, float(p_true.mean()))
    (conv_a, n_a, true_a), (conv_b, n_b_targeted, true_b) = outcome["A"], outcome["B"]
    test = stats.two_proportion_ztest(conv_a, n_a, conv_b, n_b_targeted, alpha=design.alpha)
    decision = stats.promotion_gate(test, alpha=design.alpha)
    mde = stats.minimum_detectable_effect(test.rate_a, n_a, n_b_targeted, alpha=design.alpha)
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
    return AbResult(
        experiment, champion, challenger, (len(arms) - n_b, n_b), balance, test, decision, mde, true_a, true_b
    )
