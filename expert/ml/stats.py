"""The statistics an ML platform decides with: significance gate, drift, ranking quality (+ the split).

Why statsmodels for the A/B test: the two-proportion z-test, its interval and its power are what
practitioners run from `statsmodels.stats` (`proportions_ztest`, `confint_proportions_2indep`,
`NormalIndPower`), so the pattern calls them rather than re-deriving them; the tests still check
the z-test against an independent implementation (scipy's chi-square test on the same 2x2 table).
PSI stays hand-written: it is a few lines, and no well-kept library ships it with these bins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from expert.ml.split import CHALLENGER_ARM, CHAMPION_ARM, assign_arm, bucket

__all__ = [
    "CHALLENGER_ARM",
    "CHAMPION_ARM",
    "GateDecision",
    "TwoProportionTest",
    "assign_arm",
    "bucket",
    "four_decimals",
    "minimum_detectable_effect",
    "precision_at_fraction",
    "promotion_gate",
    "psi",
    "psi_categorical",
    "psi_table",
    "two_proportion_ztest",
]

PSI_FLOOR = 1e-4
"""Bin share used in place of an empty bin, so PSI stays finite (the usual convention)."""


@dataclass(frozen=True)
class TwoProportionTest:
    """Conversions in arm A (champion) and B (challenger), and the test of B - A."""

    conversions_a: int
    n_a: int
    conversions_b: int
    n_b: int
    z: float
    p_value: float
    ci_low: float
    ci_high: float

    @property
    def rate_a(self) -> float:
        return self.conversions_a / self.n_a

    @property
    def rate_b(self) -> float:
        return self.conversions_b / self.n_b

    @property
    def lift(self) -> float:
        """Absolute difference in conversion rate, challenger minus champion."""
        return self.rate_b - self.rate_a


def two_proportion_ztest(
    conversions_a: int, n_a: int, conversions_b: int, n_b: int, *, alpha: float = 0.05
) -> TwoProportionTest:
    """Two-sided z-test of equal conversion rates (pooled standard error) with a Wald interval for B - A.

    `proportions_ztest` pools the two rates under the null, which makes it Pearson's chi-square
    test on the 2x2 table without continuity correction (z² = χ²). The interval is the Wald
    interval of the difference (unpooled), from `confint_proportions_2indep(method="wald")`.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    if min(n_a, n_b) <= 0:
        raise ValueError("both arms need at least one unit")
    pooled = (conversions_a + conversions_b) / (n_a + n_b)
    if 0 < pooled < 1:
        z, p_value = (float(v) for v in proportions_ztest([conversions_b, conversions_a], [n_b, n_a]))
    else:
        z, p_value = 0.0, 1.0
    low, high = confint_proportions_2indep(
        conversions_b, n_b, conversions_a, n_a, method="wald", compare="diff", alpha=alpha
    )
    return TwoProportionTest(conversions_a, n_a, conversions_b, n_b, z, p_value, float(low), float(high))


def minimum_detectable_effect(
    base_rate: float, n_a: int, n_b: int, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest absolute lift this sample size detects with the given power (normal approximation).

    Why report it: a 'not significant' result only means something next to the effect the test
    could have seen. statsmodels' `NormalIndPower` gives the power of a two-sample z-test for a
    standardized effect; the effect where it reaches `power` (one tail at alpha/2, the textbook
    approximation of the two-sided test), times the base rate's standard deviation, is the lift.
    """
    from scipy.optimize import brentq
    from statsmodels.stats.power import NormalIndPower

    analysis = NormalIndPower()

    def shortfall(effect: float) -> float:
        return float(analysis.power(effect, nobs1=n_a, alpha=alpha / 2, ratio=n_b / n_a, alternative="larger")) - power

    effect = brentq(shortfall, 1e-9, 50.0, xtol=1e-15)
    return float(effect) * math.sqrt(base_rate * (1 - base_rate))


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def promotion_gate(test: TwoProportionTest, *, alpha: float = 0.05) -> GateDecision:
    """Promote the challenger only if it converts better AND the difference is significant at `alpha`."""
    if test.p_value >= alpha:
        return GateDecision(False, f"not significant (p = {test.p_value:.3g} ≥ {alpha}): keep the champion")
    if test.lift <= 0:
        return GateDecision(False, f"significant but worse (lift {test.lift:+.3f}): keep the champion")
    return GateDecision(True, f"significant improvement (p = {test.p_value:.3g} < {alpha}, lift {test.lift:+.3f})")


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray, *, bins: int = 10) -> float:
    """Population stability index of a numeric feature, with bins at the reference's quantiles.

    PSI = Σ (current_share - reference_share) · ln(current_share / reference_share). Common reading:
    below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a major shift. Quantile edges that
    coincide (count features with many zeros) collapse into one bin, so discrete features work.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=len(inner) + 1) / len(ref)
    cur_share = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=len(inner) + 1) / len(cur)
    return _psi_from_shares(ref_share, cur_share)


def psi_categorical(reference: Sequence[object], current: Sequence[object]) -> float:
    """PSI of a categorical feature: one bin per category seen in either sample."""
    ref = pd.Series(reference, dtype="string").value_counts(normalize=True)
    cur = pd.Series(current, dtype="string").value_counts(normalize=True)
    categories = ref.index.union(cur.index)
    return _psi_from_shares(
        ref.reindex(categories, fill_value=0).to_numpy(), cur.reindex(categories, fill_value=0).to_numpy()
    )


def _psi_from_shares(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    ref_share = np.clip(ref_share, PSI_FLOOR, None)
    cur_share = np.clip(cur_share, PSI_FLOOR, None)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def precision_at_fraction(
    y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, fraction: float
) -> float:
    """Share of positives among the top `fraction` of units by score: what a campaign budget buys."""
    y = np.asarray(y_true)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    k = max(1, math.ceil(len(y) * fraction))
    return float(y[order[:k]].mean())


def psi_table(
    reference: pd.DataFrame,
    windows: dict[str, pd.DataFrame],
    numeric: Sequence[str],
    categorical: Sequence[str],
    threshold: float,
) -> pd.DataFrame:
    """PSI of every input in each window against `reference`, worst in the last window first, with a status."""
    rows = []
    for feature in [*numeric, *categorical]:
        row: dict[str, object] = {"feature": feature}
        for label, window in windows.items():
            measure = psi_categorical if feature in categorical else psi
            row[label] = measure(reference[feature], window[feature])
        rows.append(row)
    table = pd.DataFrame(rows)
    last = list(windows)[-1]
    table["status"] = np.where(table[last] >= threshold, "DRIFT", "ok")
    return table.sort_values(last, ascending=False, kind="stable").round(4).reset_index(drop=True)


def four_decimals(value: object) -> object:
    """A float as text with four decimals (metrics in tables); anything else unchanged."""
    return f"{value:.4f}" if isinstance(value, float) else value
