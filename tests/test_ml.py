"""The ML platform's shared layer (expert/ml): statistics against independent implementations, the
split, the drift table, and the Model Serving request, without Spark or MLflow runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency

from expert.ml import stats
from expert.ml.split import assignment_survives_restart
from expert.runtime.data import EcommerceWorld


@pytest.mark.parametrize(("ca", "na", "cb", "nb"), [(120, 400, 150, 410), (30, 90, 31, 95), (500, 1000, 430, 1000)])
def test_z_test_matches_chi_square_and_reports_the_lift(ca: int, na: int, cb: int, nb: int) -> None:
    test = stats.two_proportion_ztest(ca, na, cb, nb)
    expected = chi2_contingency([[ca, na - ca], [cb, nb - cb]], correction=False).pvalue
    assert test.p_value == pytest.approx(expected, abs=1e-12)
    assert test.lift == pytest.approx(cb / nb - ca / na)
    assert test.ci_low < test.lift < test.ci_high


def test_gate_promotes_only_a_significant_improvement() -> None:
    better = stats.two_proportion_ztest(100, 500, 160, 500)
    worse = stats.two_proportion_ztest(160, 500, 100, 500)
    noise = stats.two_proportion_ztest(100, 500, 108, 500)
    assert stats.promotion_gate(better).promote
    assert not stats.promotion_gate(worse).promote
    assert not stats.promotion_gate(noise).promote
    assert noise.p_value > 0.05 and better.p_value < 0.05 and worse.p_value < 0.05


def test_minimum_detectable_effect_halves_with_four_times_the_sample() -> None:
    small = stats.minimum_detectable_effect(0.4, 500, 500)
    large = stats.minimum_detectable_effect(0.4, 2000, 2000)
    assert large == pytest.approx(small / 2)
    assert small == pytest.approx((1.959964 + 0.841621) * math.sqrt(0.24 * (2 / 500)), rel=1e-5)


def test_hash_split_is_deterministic_balanced_and_independent_per_experiment() -> None:
    ids = range(20_000)
    first = [stats.assign_arm(i, "exp-1") for i in ids]
    assert first == [stats.assign_arm(i, "exp-1") for i in ids]
    share = first.count(stats.CHALLENGER_ARM) / len(first)
    assert abs(share - 0.5) < 0.02
    second = [stats.assign_arm(i, "exp-2") for i in ids]
    agreement = np.mean([a == b for a, b in zip(first, second, strict=True)])
    assert abs(agreement - 0.5) < 0.02, "a new experiment must reshuffle, not reuse, the split"


def test_psi_is_zero_for_the_same_sample_small_for_noise_large_for_a_shift() -> None:
    rng = np.random.default_rng(7)
    reference, noise, shifted = rng.poisson(3, 4000), rng.poisson(3, 4000), rng.poisson(6, 4000)
    assert stats.psi(reference, reference) == 0.0
    assert stats.psi(reference, noise) < 0.02
    assert stats.psi(reference, shifted) > 0.25
    assert stats.psi_categorical(list("aab"), list("aab")) == 0.0
    assert stats.psi_categorical(list("a" * 70 + "b" * 30), list("a" * 30 + "b" * 70)) > 0.25


def test_precision_at_fraction_counts_the_top_of_the_ranking() -> None:
    y = [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    scores = [0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.05, 0.01, 0.02, 0.6]
    assert stats.precision_at_fraction(y, scores, 0.3) == pytest.approx(2 / 3)
    assert stats.precision_at_fraction(y, scores, 1.0) == pytest.approx(0.3)


def test_the_hidden_propensity_is_the_truth_behind_purchases() -> None:
    """The simulations are only meaningful if the generator's propensity really drives behaviour."""
    from scipy.stats import spearmanr

    world = EcommerceWorld(40_000, seed=7)
    truth = world.purchase_propensity
    assert truth.index.equals(pd.Index(world.customers["customer_id"], name="customer_id"))
    purchases = world.events[world.events["event_type"] == "purchase"].groupby("customer_id").size()
    assert spearmanr(truth, purchases.reindex(truth.index, fill_value=0)).statistic > 0.5


def test_psi_table_flags_the_shifted_feature_and_sorts_it_first() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"views": rng.poisson(3, 3000), "segment": rng.choice(["a", "b"], 3000)})
    calm = pd.DataFrame({"views": rng.poisson(3, 3000), "segment": rng.choice(["a", "b"], 3000)})
    shifted = calm.assign(views=rng.poisson(8, 3000))
    table = stats.psi_table(reference, {"calm": calm, "now": shifted}, ["views"], ["segment"], 0.25)
    assert table["feature"].tolist() == ["views", "segment"]
    assert table["status"].tolist() == ["DRIFT", "ok"]
    assert table.loc[0, "now"] == round(stats.psi(reference["views"], shifted["views"]), 4)
    assert table.loc[1, "calm"] == round(stats.psi_categorical(reference["segment"], calm["segment"]), 4)


def test_the_split_is_the_same_in_fresh_processes_and_hash_is_not() -> None:
    stable, switched = assignment_survives_restart(list(range(400)), "restart-test")
    assert stable and switched > 100


def test_the_serving_request_splits_traffic_evenly_between_the_roles() -> None:
    from expert.ml.serving import model_serving_request

    code = model_serving_request(
        "purchase-propensity", "m", {"champion": "1", "challenger": "2"}, capture_schema="main.ml"
    )
    payload = json.loads(code.split('"""')[1])
    assert [(e["name"], e["entity_version"]) for e in payload["served_entities"]] == [
        ("champion", "1"),
        ("challenger", "2"),
    ]
    assert [r["traffic_percentage"] for r in payload["traffic_config"]["routes"]] == [50, 50]
    assert payload["auto_capture_config"]["table_name_prefix"] == "purchase_propensity"
    compile(code, "serving_request.py", "exec")


def test_four_decimals_formats_floats_only() -> None:
    assert stats.four_decimals(0.123456) == "0.1235"
    assert stats.four_decimals(3) == 3 and stats.four_decimals("x") == "x"


def _textbook(ca: int, na: int, cb: int, nb: int) -> dict[str, float]:
    """The z-test, Wald interval and minimum detectable effect (alpha 0.05, power 0.8) from their formulas."""
    alpha, power = 0.05, 0.8
    from scipy.stats import norm

    ra, rb = ca / na, cb / nb
    pooled = (ca + cb) / (na + nb)
    z = (rb - ra) / math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    half = norm.ppf(1 - alpha / 2) * math.sqrt(ra * (1 - ra) / na + rb * (1 - rb) / nb)
    mde = (norm.ppf(1 - alpha / 2) + norm.ppf(power)) * math.sqrt(ra * (1 - ra) * (1 / na + 1 / nb))
    return {"z": z, "p": 2 * norm.sf(abs(z)), "low": rb - ra - half, "high": rb - ra + half, "mde": mde}


def test_statsmodels_gives_the_textbook_numbers_to_the_printed_precision_and_beyond() -> None:
    """What the pattern prints (lift and interval to 4 decimals, z to 2, p to 4 significant digits,
    the detectable lift to 3) is unchanged by computing it with statsmodels."""
    rng = np.random.default_rng(11)
    cases = [(1062, 3585, 1081, 3615), (530, 2400, 610, 2380), (30, 90, 31, 95)]
    cases += [
        (int(rng.integers(1, n)), int(n), int(rng.integers(1, m)), int(m)) for n, m in rng.integers(50, 6000, (200, 2))
    ]
    for ca, na, cb, nb in cases:
        test = stats.two_proportion_ztest(ca, na, cb, nb)
        mde = stats.minimum_detectable_effect(test.rate_a, na, nb)
        want = _textbook(ca, na, cb, nb)
        got = {"z": test.z, "p": test.p_value, "low": test.ci_low, "high": test.ci_high, "mde": mde}
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert (
            f"{test.z:.2f}",
            f"{test.p_value:.4g}",
            f"{test.ci_low:+.4f}",
            f"{test.ci_high:+.4f}",
            f"{mde:.3f}",
        ) == (
            f"{want['z']:.2f}",
            f"{want['p']:.4g}",
            f"{want['low']:+.4f}",
            f"{want['high']:+.4f}",
            f"{want['mde']:.3f}",
        )


def test_a_test_with_no_variation_is_not_significant() -> None:
    test = stats.two_proportion_ztest(0, 100, 0, 120)
    assert (test.z, test.p_value, test.lift) == (0.0, 1.0, 0.0)
    assert not stats.promotion_gate(test).promote
