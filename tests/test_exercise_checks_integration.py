"""The integration track's checks catch the mistakes practitioners make, each with its own invariant.

Each case edits the reference solution into a typical wrong one and runs the real check on it:
the check must fail (not pass, not crash), naming the invariant the mistake breaks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from expert.exercises.catalog import find
from expert.exercises.worker import run_check

WRONG = [
    pytest.param(
        "integration/02.2",
        '    session.execute("BEGIN TRANSACTION")\n',
        "",
        "every event loaded exactly once",
        id="02.2-no-transaction-around-rows-and-ledger",
    ),
    pytest.param(
        "integration/02.2",
        'WHERE PIPELINE = %s AND BATCH_ID = %s"\n    if session.scalar(seen, (pipeline, batch_id)):',
        'WHERE BATCH_ID = %s"\n    if session.scalar(seen, (batch_id,)):',
        "no event lost",
        id="02.2-ledger-keyed-on-batch-id-only",
    ),
    pytest.param(
        "integration/02.3",
        "if watermark is not None:\n            late |=",
        "if True:\n            watermark = max(watermark or batch['event_ts'].max() - delay, batch['event_ts'].max() - delay)\n            late |=",
        "the ids the watermark drops",
        id="02.3-watermark-moved-by-the-batch-it-filters",
    ),
    pytest.param(
        "integration/01.1",
        "default=watermark",
        "default=0",
        "a rerun with the watermark reads nothing and keeps it",
        id="01.1-watermark-reset-when-nothing-is-new",
    ),
    pytest.param(
        "integration/01.1",
        'url = urljoin(base_url, body["next"]) if body["next"] else None',
        "url = None",
        "first pull: every new record, and only new ones",
        id="01.1-first-page-only",
    ),
    pytest.param(
        "integration/01.1",
        '"_source_file": url}',
        '"_source_file": base_url}',
        "first pull: each record's _source_file is the URL of the page that served it",
        id="01.1-lineage-names-the-api-not-the-page",
    ),
    pytest.param(
        "integration/01.2",
        "ORDER BY PAID_TS DESC, PAYMENT_ID DESC",
        "ORDER BY PAYMENT_ID DESC",
        "each order carries its latest payment",
        id="01.2-latest-by-payment-id",
    ),
    pytest.param(
        "integration/01.2",
        "LEFT JOIN latest",
        "JOIN latest",
        "no order is lost",
        id="01.2-inner-join-drops-unpaid-orders",
    ),
    pytest.param(
        "integration/03.2",
        "2 * stats.norm.sf(abs(z))",
        "stats.norm.sf(abs(z))",
        "the p-value is the two-sided pooled z-test's",
        id="03.2-one-sided-p",
    ),
    pytest.param(
        "integration/03.2",
        "pooled * (1 - pooled) * (1 / n_a + 1 / n_b)",
        "rate_a * (1 - rate_a) / n_a + rate_b * (1 - rate_b) / n_b",
        "the p-value is the two-sided pooled z-test's",
        id="03.2-unpooled-standard-error",
    ),
    pytest.param(
        "integration/03.2",
        "p_value < alpha and rate_b > rate_a",
        "p_value < alpha",
        "promote only a significant improvement",
        id="03.2-promotes-a-significant-loss",
    ),
    pytest.param(
        "integration/03.3",
        "    client.delete_registered_model_alias(model_name, CHALLENGER)\n",
        "",
        "a promoted challenger is no longer a challenger",
        id="03.3-challenger-alias-left-behind",
    ),
    pytest.param(
        "integration/03.3",
        "    if not promote:\n        return\n",
        "",
        "the registry changes only when the gate promotes",
        id="03.3-promotes-whatever-the-gate-says",
    ),
    pytest.param(
        "integration/03.3",
        "replaced = client.get_model_version(model_name, champion.version).tags.get(REPLACED_TAG)",
        "replaced = str(int(champion.version) - 1) if int(champion.version) > 1 else None",
        "a rollback returns @champion to the version it replaced",
        id="03.3-rollback-to-the-previous-number",
    ),
    pytest.param(
        "integration/03.4",
        "np.clip(current_share / len(current), SHARE_FLOOR, None)",
        "current_share / len(current)",
        "PSI stays finite when a bin is empty",
        id="03.4-no-floor",
    ),
    pytest.param(
        "integration/03.4",
        'side="right"',
        'side="left"',
        "a count feature full of ties",
        id="03.4-ties-binned-below",
    ),
    pytest.param(
        "integration/04.2",
        "present.str.fullmatch(pattern).mean()",
        "values.str.fullmatch(pattern).eq(True).mean()",
        "every unprotected column holding personal data is reported",
        id="04.2-share-counts-nulls",
    ),
    pytest.param(
        "integration/04.2",
        " and not contract.column(name).protected",
        "",
        "only personal data is reported, and only where it is not protected",
        id="04.2-ignores-the-classification",
    ),
    pytest.param(
        "integration/04.3",
        "needed = max(needed, MAJOR if was.required else MINOR)",
        "needed = max(needed, MINOR)",
        "a release smaller than its change is blocked",
        id="04.3-newly-nullable-as-minor",
    ),
    pytest.param(
        "integration/04.3",
        'tuple(int(part) for part in c.version.split("."))',
        "c.version",
        "a release that covers its change is allowed",
        id="04.3-versions-compared-as-text",
    ),
    pytest.param(
        "integration/04.3",
        "MINOR if is_widening(was.physical_type, now.physical_type) else MAJOR",
        "MAJOR",
        "a release that covers its change is allowed",
        id="04.3-widening-treated-as-breaking",
    ),
]

SPARK_WRONG = [
    pytest.param(
        "integration/02.1",
        '.option("txnAppId", app_id)',
        '.option("txnAppId", "orders-stream")',
        "another app id's batch 0 is not mistaken for this stream's batch 0",
        id="02.1-one-app-id-for-every-query",
    ),
    pytest.param(
        "integration/01.3",
        "sum(CAST(amount * 100 AS BIGINT)) AS amount_cents",
        "sum(amount) AS revenue",
        "every measure is an exact integer in both engines",
        id="01.3-money-as-a-decimal-sum",
    ),
    pytest.param(
        "integration/01.3",
        ", sum(order_id) AS key_sum",
        "",
        "every single-row drift is detected on its day",
        id="01.3-no-key-checksum",
    ),
    pytest.param(
        "integration/03.1",
        'F.col(ts_column) <= F.col("label_ts")',
        'F.col(ts_column) < F.col("label_ts")',
        "each row carries the latest snapshot at or before its label_ts",
        id="03.1-snapshot-at-the-label-instant-excluded",
    ),
    pytest.param(
        "integration/03.1",
        'Window.partitionBy("customer_id", "label_ts")',
        'Window.partitionBy("customer_id")',
        "each row carries the latest snapshot at or before its label_ts",
        id="03.1-one-snapshot-per-customer",
    ),
    pytest.param(
        "integration/04.1",
        '.when(~F.col("status").isin(*KNOWN_STATUSES), "status_known")\n'
        '        .when(F.col("amount") != F.col("unit_price") * F.col("quantity"), "amount_is_price_times_quantity")',
        '.when(F.col("amount") != F.col("unit_price") * F.col("quantity"), "amount_is_price_times_quantity")',
        "every quality rule of the contract passes",
        id="04.1-unknown-statuses-published",
    ),
]


def wrong_solution(tmp_path: Path, exercise_id: str, old: str, new: str) -> Path:
    exercise = find(exercise_id)
    text = exercise.solution_path.read_text()
    assert old in text, f"{old!r} is not in {exercise.solution}"
    path = tmp_path / exercise.path.name
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("exercise_id", "old", "new", "invariant"), WRONG)
def test_a_typical_mistake_breaks_its_invariant(
    tmp_path: Path, exercise_id: str, old: str, new: str, invariant: str
) -> None:
    verdict = run_check(find(exercise_id), wrong_solution(tmp_path, exercise_id, old, new))
    assert verdict.status == "failed", verdict
    assert verdict.invariant.startswith(invariant), verdict


@pytest.mark.usefixtures("spark")
@pytest.mark.parametrize(("exercise_id", "old", "new", "invariant"), SPARK_WRONG)
def test_a_typical_spark_mistake_breaks_its_invariant(
    tmp_path: Path, exercise_id: str, old: str, new: str, invariant: str
) -> None:
    verdict = run_check(find(exercise_id), wrong_solution(tmp_path, exercise_id, old, new))
    assert verdict.status == "failed", verdict
    assert verdict.invariant.startswith(invariant), verdict


def test_the_release_gates_truth_agrees_with_the_lessons_gate() -> None:
    """The check's expected verdicts (from the edits it made) are the lesson's `version_gate` verdicts."""
    from expert.exercises.checks.integration_04 import releases
    from expert.runtime.contracts import version_gate

    cases = releases(np.random.default_rng(3))
    assert {c.allowed for c in cases} == {True, False}
    assert [version_gate(c.published, c.proposed).allowed for c in cases] == [c.allowed for c in cases]


def test_the_ab_experiments_straddle_every_line_of_the_gate() -> None:
    """The planted experiments cover a promotion, a significant loss and the borderline p-values."""
    from expert.exercises.checks.integration_03 import chi_square_p, experiments

    cases = experiments(np.random.default_rng(5))
    p = {e.name: chi_square_p(e) for e in cases}
    assert p["challenger clearly better"] < 0.001 and p["challenger clearly worse"] < 0.001
    assert 0.05 < p["one-sided significant but two-sided not"] < 0.1
    assert 0.01 < p["stricter alpha"] < 0.05 < p["better but not significant"]
    assert p["no difference"] > 0.9
