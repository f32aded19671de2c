"""The Snowflake exercise checks catch the mistakes learners make, each with the invariant it breaks.

Each wrong solution is the reference solution with one typical mistake put back (the naive
version a practitioner writes first); the check must fail it, naming the broken invariant, and
never with an exception. The checks' own ground truth (the billing model, the trigger days, the
GRANTS_TO_ROLES rows) is tested apart, against the lesson and by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expert.exercises.catalog import find
from expert.exercises.checks import snowflake_02, snowflake_03
from expert.exercises.verdict import Verdict
from expert.exercises.worker import run_check
from expert.runtime.pattern import load_module, select_patterns
from expert.runtime.rbac import RbacModel

MISTAKES = [
    pytest.param(
        "snowflake/01.1",
        "  QUALIFY ROW_NUMBER() OVER (PARTITION BY ORDER_ID ORDER BY UPDATED_AT DESC, _SEQ DESC) = 1\n",
        "",
        "one row per ORDER_ID",
        id="01.1-no-qualify-dedup",
    ),
    pytest.param(
        "snowflake/01.2",
        "    WHEN {stamps} THEN '{REASONS[3]}'\n",
        "",
        "a typed row has every field",
        id="01.2-timestamps-guessed-or-null",
    ),
    pytest.param(
        "snowflake/01.3",
        """            if any(row["STATUS"] == "LOADED" for row in rows):
                after_load(session, f"orders/{path.name}")
                loaded.append(f"orders/{path.name}")
""",
        """            after_load(session, f"orders/{path.name}")
            loaded.append(f"orders/{path.name}")
""",
        "round 2 loads the file that failed before and the new one, nothing else",
        id="01.3-load-step-for-skipped-files",
    ),
    pytest.param(
        "snowflake/01.4",
        "  FROM {events} AS e, LATERAL FLATTEN(input => e.V) AS f\n",
        "  FROM {events} AS e, LATERAL FLATTEN(input => e.V) AS f WHERE NOT IS_NULL_VALUE(f.value)\n",
        "the report names every key a file added or lost",
        id="01.4-null-valued-key-taken-for-absent",
    ),
    pytest.param(
        "snowflake/02.1",
        "MAX(E) OVER (PARTITION BY WAREHOUSE_NAME ORDER BY S, E\n                         "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)",
        "LAG(E) OVER (PARTITION BY WAREHOUSE_NAME ORDER BY S, E)",
        "at today's settings the replay reproduces WAREHOUSE_METERING_HISTORY",
        id="02.1-lag-splits-overlapping-runs",
    ),
    pytest.param(
        "snowflake/02.1",
        "GREATEST(60, DATEDIFF('millisecond', MIN(S), MAX(E)) / 1000 + AUTO_SUSPEND)",
        "DATEDIFF('millisecond', MIN(S), MAX(E)) / 1000 + AUTO_SUSPEND",
        "every candidate setting replays to the billing model's resumes and credits",
        id="02.1-no-60-second-minimum",
    ),
    pytest.param(
        "snowflake/02.1",
        "    if not interactive:\n        return cheapest_first[0]\n",
        "    return cheapest_first[0]\n",
        "the recommended setting follows the rule (interactive warehouse)",
        id="02.1-cold-starts-ignored",
    ),
    pytest.param(
        "snowflake/02.2",
        "SUM(IFF(BYTES_SPILLED_TO_REMOTE_STORAGE > 0, EXECUTION_TIME, 0)) / SUM(EXECUTION_TIME)",
        "COUNT_IF(BYTES_SPILLED_TO_REMOTE_STORAGE > 0) / COUNT(*)",
        "as billed: the evidence matches the history, query by query",
        id="02.2-spill-by-count",
    ),
    pytest.param(
        "snowflake/02.2",
        "    if spill >= SPILL_SIZE_UP:\n        return REMEDIES[0]\n    if queued >= QUEUED_ADD_CLUSTERS:\n"
        "        return REMEDIES[1]\n",
        "    if queued >= QUEUED_ADD_CLUSTERS:\n        return REMEDIES[1]\n    if spill >= SPILL_SIZE_UP:\n"
        "        return REMEDIES[0]\n",
        "a mixed month: each symptom gets its remedy",
        id="02.2-clusters-for-a-spilling-warehouse",
    ),
    pytest.param(
        "snowflake/02.3",
        "MIN(DATEDIFF('day', %(cycle_start)s::TIMESTAMP_NTZ, u.START_TIME)) + 1",
        "COUNT(DISTINCT TO_DATE(u.START_TIME))",
        "each trigger fires on the cycle day its threshold is first reached",
        id="02.3-days-counted-from-rows",
    ),
    pytest.param(
        "snowflake/02.3",
        "LEFT JOIN used",
        "JOIN used",
        "one row per trigger, whether it fires or not",
        id="02.3-inner-join-drops-triggers",
    ),
    pytest.param(
        "snowflake/03.1",
        """clear = "IS_ROLE_IN_SESSION('AR_PII_CLEAR')\"""",
        """clear = "CURRENT_ROLE() = 'FR_COMPLIANCE'\"""",
        "roles holding AR_PII_CLEAR, directly or through the roles they inherit, read PII in clear",
        id="03.1-role-name-instead-of-access-role",
    ),
    pytest.param(
        "snowflake/03.1",
        "REGEXP_REPLACE(VAL, '^[^@]+', '*****')",
        "'*****'",
        "a masked value has its category's form",
        id="03.1-email-masked-whole",
    ),
    pytest.param(
        "snowflake/03.2",
        "\"IS_ROLE_IN_SESSION('AR_CORE_READ') OR EXISTS (\"",
        '"EXISTS ("',
        "a role holding AR_CORE_READ (directly or inherited) sees every row",
        id="03.2-full-readers-forgotten",
    ),
    pytest.param(
        "snowflake/03.3",
        "SELECT * FROM {grants} WHERE DELETED_ON IS NULL",
        "SELECT * FROM {grants}",
        "the roles reported are exactly those whose closure reads PII in clear",
        id="03.3-revoked-grants-counted",
    ),
    pytest.param(
        "snowflake/03.3",
        "  UNION\n  SELECT NAME AS ROLE_NAME, 'PUBLIC' AS HELD FROM {roles}\n",
        "",
        "the roles reported are exactly those whose closure reads PII in clear",
        id="03.3-public-forgotten",
    ),
]


def check_variant(tmp_path: Path, exercise_id: str, old: str, new: str) -> Verdict:
    """The exercise's check on its reference solution with `old` replaced by `new`."""
    exercise = find(exercise_id)
    text = exercise.solution_path.read_text()
    assert old in text, f"{exercise.solution} no longer contains the line this mistake changes"
    path = tmp_path / exercise.path.name
    path.write_text(text.replace(old, new, 1))
    return run_check(exercise, path)


@pytest.mark.parametrize(("exercise_id", "old", "new", "invariant"), MISTAKES)
def test_a_typical_mistake_breaks_its_invariant(
    tmp_path: Path, exercise_id: str, old: str, new: str, invariant: str
) -> None:
    verdict = check_variant(tmp_path, exercise_id, old, new)
    assert verdict.status == "failed", verdict
    assert invariant in verdict.invariant, verdict
    assert verdict.message, verdict


def test_sql_the_engine_refuses_is_a_failed_check_at_the_function(tmp_path: Path) -> None:
    verdict = check_variant(tmp_path, "snowflake/02.3", "LEFT JOIN used AS u", "LEFT JOIN used AS u JOIN")
    assert verdict.status == "failed", verdict
    assert verdict.invariant == "the engine refused the SQL trigger_days_sql returned"
    path, line = verdict.where.rsplit(":", 1)
    assert path.endswith("ex3_resource_monitor.py") and int(line) > 0


def test_the_billing_model_of_the_check_agrees_with_the_lesson() -> None:
    """Two implementations of Snowflake's billing: the check's ground truth and the lesson's own."""
    (meta,) = select_patterns("snowflake/02")
    lesson = load_module(meta)
    rng = np.random.default_rng(11)
    starts = np.sort(rng.uniform(0, 8 * 3600, 400))
    ends = starts + rng.exponential(60, 400)
    for auto_suspend in (0, 30, 60, 600):
        ours = np.array(snowflake_02.billed_runs(starts, ends, auto_suspend))
        theirs = np.array(lesson.billed_sessions(starts, ends, auto_suspend))
        assert ours.shape == theirs.shape and np.allclose(ours, theirs)


def test_the_billing_model_by_hand() -> None:
    # A long query [0, 100] overlaps a short one [10, 20]; the next starts 70 s after the short one
    # ended but only 30 s after the long one: at AUTO_SUSPEND 60 it is the same run.
    starts, ends = np.array([0.0, 10.0, 130.0]), np.array([100.0, 20.0, 140.0])
    assert snowflake_02.billed_runs(starts, ends, 60) == [(0.0, 200.0)]
    assert snowflake_02.billed_runs(starts, ends, 20) == [(0.0, 120.0), (130.0, 190.0)]


def test_trigger_days_by_hand() -> None:
    start = pd.Timestamp("2026-01-03")
    hours = [start + pd.Timedelta(hours=h) for h in (1, 2, 49, 50)]
    frame = pd.DataFrame({"START_TIME": [start - pd.Timedelta(hours=1), *hours], "CREDITS_USED": [99.0, 1, 1, 1, 1]})
    # 4 credits in the cycle (the hour before it belongs to the previous cycle); day 3 has hours 49-50.
    assert snowflake_02.true_fire_days(frame, start, quota=4) == {50: 1, 75: 3, 100: 3, 110: None}


def test_grants_to_roles_rows_split_tables_and_mark_revoked_grants() -> None:
    model = RbacModel.build({"SYSADMIN": ()}, {"AR_READ": ()}, {"FR_X": ("AR_READ",)}, {"FR_X": "SYSADMIN"})
    revoked = [{"PRIVILEGE": "SELECT", "GRANTED_ON": "TABLE", "NAME": "DB.S.T", "GRANTEE_NAME": "PUBLIC"}]
    rows = snowflake_03.grants_to_roles(model, revoked)
    assert {(r["GRANTED_ON"], r["NAME"], r["GRANTEE_NAME"], r["DELETED_ON"]) for r in rows} == {
        ("ROLE", "AR_READ", "FR_X", None),
        ("ROLE", "FR_X", "SYSADMIN", None),
        ("TABLE", "T", "PUBLIC", 1),
    }
    assert next(r for r in rows if r["GRANTED_ON"] == "TABLE")["TABLE_CATALOG"] == "DB"


def test_the_clear_readers_of_the_lessons_model_are_the_allowed_set() -> None:
    """The check's ground truth agrees with the lesson's claim on its own model."""
    (meta,) = select_patterns("snowflake/03")
    lesson = load_module(meta)
    assert snowflake_03.true_clear_readers(lesson.declared_model()) == set(lesson.ALLOWED_PII_CLEAR)
