"""The Databricks exercise checks catch the mistakes learners make, each with the invariant it breaks.

Each wrong solution is the reference solution with one typical mistake put back (the naive version
a practitioner writes first); the check must fail it, naming the broken invariant, and never with
an exception. The checks' own ground truth (the stale-source schedules, the volume baseline,
schemachange's plan) is tested apart, by hand and against the tools it stands for.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import require_tool
from expert import PROJECT_ROOT
from expert.exercises.catalog import find
from expert.exercises.checks import databricks_02, databricks_03
from expert.exercises.verdict import Verdict
from expert.exercises.worker import run_check

MISTAKES = [
    pytest.param(
        "databricks/02.1",
        '        "for": "5m",\n',
        "",
        "a stalled source pages once its newest data is more than 10 minutes old, and has been for 5 minutes",
        id="02.1-no-for-pages-at-once",
    ),
    pytest.param(
        "databricks/02.1",
        '"lakehouse_source_freshness_seconds > 600"',
        '"max(lakehouse_source_freshness_seconds) > 600"',
        "a stalled source pages once its newest data is more than 10 minutes old, and has been for 5 minutes",
        id="02.1-max-loses-the-source-label",
    ),
    pytest.param(
        "databricks/02.1",
        '"lakehouse_source_freshness_seconds > 600"',
        '"lakehouse_source_rows_last_run == 0"',
        "when the pipeline itself stops running, every source pages",
        id="02.1-empty-runs-miss-a-stopped-pipeline",
    ),
    pytest.param(
        "databricks/02.1",
        '"for": "5m",',
        '"for": "5m", "keep_firing_for": "15m",',
        "when the pipeline itself stops running, every source pages",
        id="02.1-keeps-firing-after-data-flows",
    ),
    pytest.param(
        "databricks/02.1",
        '"runbook_url": "docs/runbooks/source-stale.md"',
        '"runbook_url": "docs/runbooks/volume-anomaly.md"',
        "the page links to the runbook that says what to do",
        id="02.1-wrong-runbook",
    ),
    pytest.param(
        "databricks/02.2",
        "statistics.median(with_data)",
        "statistics.mean(with_data)",
        "ratio = rows this run / median of the earlier runs that delivered data",
        id="02.2-mean-moved-by-a-spike",
    ),
    pytest.param(
        "databricks/02.2",
        "        if with_data:\n            metrics.source_volume_ratio.labels(source).set(delivered / statistics.median(with_data))\n",
        "        metrics.source_volume_ratio.labels(source).set(\n"
        "            delivered / statistics.median(with_data) if with_data else 0.0\n        )\n",
        "no ratio before the source has a baseline",
        id="02.2-zero-ratio-before-a-baseline",
    ),
    pytest.param(
        "databricks/02.3",
        "    for rule, violations in counts.violations.items():\n",
        "    for rule, violations in counts.violations.items():\n        if not violations:\n            continue\n",
        "every rule evaluated has a violations series from its first run on",
        id="02.3-series-born-at-first-failure",
    ),
    pytest.param(
        "databricks/02.3",
        "counts.dropped / counts.rows_in",
        "sum(counts.violations.values()) / counts.rows_in",
        "lakehouse_dq_failed_ratio is the share of the table's rows quarantined by drop rules",
        id="02.3-warnings-counted-as-quarantined",
    ),
    pytest.param(
        "databricks/02.3",
        '"Rows evaluated by expectations"',
        '""',
        "Prometheus accepts the exposition without a lint finding",
        id="02.3-no-help-text",
    ),
    pytest.param(
        "databricks/03.3",
        'succeeded = [row for row in history if row["STATUS"] == "Success"]',
        "succeeded = list(history)",
        "every versioned script newer than the newest successfully applied version is due",
        id="03.3-failed-run-counted-as-applied",
    ),
    pytest.param(
        "databricks/03.3",
        " and (newest is None or version_key(name) > newest)",
        "",
        "a versioned script runs once, and never below the newest applied version",
        id="03.3-hotfix-below-the-newest-version",
    ),
    pytest.param(
        "databricks/03.3",
        'last_run = {row["SCRIPT"]: row["CHECKSUM"] for row in succeeded if row["SCRIPT_TYPE"] == "R"}',
        'last_run = {row["SCRIPT"]: row["CHECKSUM"] for row in reversed(succeeded) if row["SCRIPT_TYPE"] == "R"}',
        "a repeatable script runs when it is new or its content changed since its last successful run",
        id="03.3-first-checksum-instead-of-the-latest",
    ),
    pytest.param(
        "databricks/03.3",
        "key=version_key)",
        ")",
        "versioned scripts run in version order",
        id="03.3-versions-sorted-as-text",
    ),
]

SPARK_MISTAKES = [
    pytest.param(
        "databricks/01.2",
        "F.when(~F.coalesce(F.expr(condition), F.lit(False)), F.lit(name))",
        "F.when(~F.expr(condition), F.lit(name))",
        "a kept row passes every rule",
        id="01.2-null-condition-kept",
    ),
    pytest.param(
        "databricks/01.2",
        "for name, condition in rules]",
        "for name, condition in reversed(rules)]",
        "each quarantined row names the first rule it fails",
        id="01.2-last-rule-named",
    ),
    pytest.param(
        "databricks/01.3",
        ("            .where(touched)\n", '            .option("replaceWhere", touched)\n'),
        ("", ""),
        "days no change touched are not rewritten",
        id="01.3-full-refresh",
    ),
    pytest.param(
        "databricks/01.3",
        '            .mode("overwrite")\n            .option("replaceWhere", touched)\n',
        '            .mode("append")\n',
        "after the refresh gold equals a full recompute from silver",
        id="01.3-appended-days",
    ),
    pytest.param(
        "databricks/01.3",
        'changes.select("order_date")',
        'changes.where("_change_type != \'update_preimage\'").select("order_date")',
        "after the refresh gold equals a full recompute from silver",
        id="01.3-re-dated-order-leaves-its-day-stale",
    ),
    pytest.param(
        "databricks/03.1",
        ("F.count_if(~F.coalesce(F.expr(ROW_RULES), F.lit(False)))", '    if counts["with_nulls"]:\n'),
        ("F.count_if(~F.expr(ROW_RULES))", "    if False:\n"),
        "a release that breaks its contract never goes live",
        id="03.1-null-passes-a-value-rule",
    ),
    pytest.param(
        "databricks/03.1",
        '    release.write.format("delta").mode("overwrite").save(live)',
        '    spark.sql(f"DELETE FROM delta.`{live}`")\n    release.write.format("delta").mode("append").save(live)',
        "a release that meets its contract is published, in one commit",
        id="03.1-delete-then-insert",
    ),
    pytest.param(
        "databricks/03.2",
        "TO VERSION AS OF {blue}",
        "TO VERSION AS OF 0",
        "a release that fails verification is rolled back with RESTORE",
        id="03.2-restore-to-the-first-version",
    ),
    pytest.param(
        "databricks/03.2",
        "problems = verify(live_version(spark, live))",
        "problems = verify(blue)",
        "the release is published in one commit and verified as the live table's new version",
        id="03.2-verifies-the-old-version",
    ),
]


PROMTOOL_EXERCISES = {"databricks/02.1", "databricks/02.3"}


def check_variant(tmp_path: Path, exercise_id: str, old: str | tuple[str, ...], new: str | tuple[str, ...]) -> Verdict:
    """The exercise's check on its reference solution with `old` replaced by `new` (or each of several)."""
    exercise = find(exercise_id)
    text = exercise.solution_path.read_text()
    pairs = [(old, new)] if isinstance(old, str) else list(zip(old, new, strict=True))
    for before, after in pairs:
        assert before in text, f"{exercise.solution} no longer contains the line this mistake changes"
        text = text.replace(before, after, 1)
    path = tmp_path / exercise.path.name
    path.write_text(text)
    return run_check(exercise, path)


def _judge(verdict: Verdict, invariant: str) -> None:
    assert verdict.status == "failed", verdict
    assert invariant in verdict.invariant, verdict
    assert verdict.message, verdict


@pytest.mark.parametrize(("exercise_id", "old", "new", "invariant"), MISTAKES)
def test_a_typical_mistake_breaks_its_invariant(
    tmp_path: Path, exercise_id: str, old: str | tuple[str, ...], new: str | tuple[str, ...], invariant: str
) -> None:
    if exercise_id in PROMTOOL_EXERCISES:
        require_tool("promtool")
    _judge(check_variant(tmp_path, exercise_id, old, new), invariant)


@pytest.mark.usefixtures("spark")
@pytest.mark.parametrize(("exercise_id", "old", "new", "invariant"), SPARK_MISTAKES)
def test_a_typical_spark_mistake_breaks_its_invariant(
    tmp_path: Path, exercise_id: str, old: str | tuple[str, ...], new: str | tuple[str, ...], invariant: str
) -> None:
    _judge(check_variant(tmp_path, exercise_id, old, new), invariant)


def test_without_promtool_the_check_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(databricks_02, "promtool_binary", lambda: None)
    exercise = find("databricks/02.1")
    verdict = run_check(exercise, exercise.solution_path)
    assert verdict.status == "bad-input" and "promtool is not installed" in verdict.message
    assert "make tools" in verdict.where


def test_the_runbooks_rule_fires_resolves_and_ignores_a_late_run() -> None:
    """The check's ground truth on its own schedules, by hand: when the stall pages and when it stops."""
    stall, stopped, late, resolved = databricks_02.stale_scenarios(1234)
    fired = next(m for m, sources in enumerate(stall.expected) if sources)
    (stalled,) = stall.expected[fired]
    # the first empty run is at 20 or 30 minutes (plus the offset): 10 minutes later the data is
    # older than 600 s, and `for: 5m` adds five evaluations of pending
    assert stall.timeline.freshness(stalled, fired - 5) > 600 >= stall.timeline.freshness(stalled, fired - 6)
    assert not any(late.expected), "a run a few minutes late never fires"
    assert any(len(sources) == len(databricks_02.SOURCES) for sources in stopped.expected)
    assert all(not resolved.expected[m] for m in resolved.window), "after data flows again nothing fires"


def test_the_runbooks_rule_passes_promtool_on_every_scenario(tmp_path: Path) -> None:
    """The ground truth (the lesson's evaluator) and Prometheus agree on the spec rule itself."""
    binary = require_tool("promtool")
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(databricks_02.rules_document(databricks_02.STALE_SPEC)))
    for number, scenario in enumerate(databricks_02.stale_scenarios(99)):
        test_file = tmp_path / f"t{number}.yml"
        test_file.write_text(yaml.safe_dump(databricks_02.rules_test(rules_file, scenario, {})))
        done = databricks_02.run_promtool(binary, "test", "rules", test_file.name, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_failures_are_read_back() -> None:
    output = """Unit Testing:  t.yml
  FAILED:
    alertname: LakehouseSourceStale, time: 1h1m,
        exp:[],
        got:[
            0:
              Labels:{alertname="LakehouseSourceStale", severity="page", source="orders"}
              Annotations:{}
            ]
"""
    mismatch = databricks_02.first_mismatch(output)
    assert mismatch == databricks_02.AlertMismatch(61, [], ["orders"])
    assert databricks_02.promtool_minutes("26m") == 26


def test_the_volume_baseline_by_hand() -> None:
    # runs with data: 100, 300 (the zeros are a stall): median 200
    assert databricks_02.expected_ratio([100, 0, 300, 0], 100) == 0.5
    assert databricks_02.expected_ratio([0, 0], 50) is None
    assert databricks_02.expected_ratio([100, 120, 900], 60) == 0.5


def test_the_migration_plan_of_the_repository_is_schemachanges_order() -> None:
    folder = PROJECT_ROOT / "deploy" / "snowflake" / "migrations"
    scripts = {p.name: p.read_text() for p in folder.glob("*.sql")}
    plan = databricks_03.due_scripts(scripts, [])
    assert plan == [
        "V1.0.0__create_gold_daily_sales.sql",
        "V1.1.0__create_gold_daily_funnel.sql",
        "V1.2.0__add_release_lineage.sql",
        "R__gold_views.sql",
    ]
    applied = [databricks_03.history_row(name, scripts[name]) for name in plan]
    assert databricks_03.due_scripts(scripts, applied) == []


def test_the_migration_plan_by_hand() -> None:
    scripts = {"V1.9.0__a.sql": "a", "V1.10.0__b.sql": "b", "V1.2.5__hotfix.sql": "h", "R__v.sql": "v2"}
    history = [
        databricks_03.history_row("V1.9.0__a.sql", "a"),
        databricks_03.history_row("V1.10.0__b.sql", "b", "Failed"),
        databricks_03.history_row("R__v.sql", "v2"),
        databricks_03.history_row("R__v.sql", "v1"),
    ]
    # 1.10.0 failed, so it is due; the hotfix 1.2.5 is below 1.9.0 and never runs; the view's last
    # successful run had other content
    assert databricks_03.due_scripts(scripts, history) == ["V1.10.0__b.sql", "R__v.sql"]
