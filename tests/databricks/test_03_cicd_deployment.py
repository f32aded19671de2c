"""databricks/03: jobs as code, IaC, migrations, the workflow, and write-audit-publish with rollback.

The first group is pure Python (no engine): the pattern runs them, with the validators' own tests in
tests/test_release_validators.py, as its unit-test gate (`GATE_TESTS`), so they must stay fast. The
rest use Spark or the whole pattern run.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from conftest import require_tool
from expert import PROJECT_ROOT
from expert.release import bundle, terraform, workflow
from expert.release.policy import policy_violations


def pattern() -> ModuleType:
    from expert.runtime.pattern import load_module, select_patterns

    return load_module(select_patterns("databricks/03")[0])


def resolved(target: str, **extra: str) -> object:
    m = pattern()
    context = {
        "workspace.current_user.userName": "someone@example.com",
        "bundle.git.commit": "abc1234",
        **{f"var.{k}": v for k, v in m.LOCAL_DEPLOY_VARIABLES.items()},
        **extra,
    }
    return bundle.resolve_targets(m.BUNDLE_FILE, m.TARGETS, context, job_key=m.JOB_KEY, sync_root=PROJECT_ROOT)[target]


# ---------------------------------------------------------------------------------- the gate (pure Python)


def test_typed_job_round_trips_and_matches_the_committed_bundle() -> None:
    m = pattern()
    settings = m.build_job_settings()
    assert bundle.round_trip_problems(settings.as_dict()) == []
    assert m.JOB_RESOURCE_FILE.read_text() == m.job_resource_yaml(settings), "run the pattern with --write-bundle"
    tasks = [t.task_key for t in settings.tasks]
    assert tasks == list(m.PIPELINE_TASKS)
    assert [t.depends_on[0].task_key for t in settings.tasks[1:]] == tasks[:-1]


def test_from_dict_drops_a_misspelled_key_that_the_validator_reports() -> None:
    from databricks.sdk.service.jobs import JobSettings

    m = pattern()
    payload = m.build_job_settings().as_dict()
    payload["tasks"][0]["max_retires"] = 3
    assert "max_retires" not in JobSettings.from_dict(payload).as_dict()["tasks"][0]
    assert bundle.round_trip_problems(payload) == [
        "tasks[0].max_retires: unknown to the Jobs API (dropped by from_dict)"
    ]


def test_cluster_policy_rejects_an_oversized_cluster() -> None:
    m = pattern()
    policy = json.loads(m.CLUSTER_POLICY_FILE.read_text())
    cluster = resolved("prod").settings["job_clusters"][0]["new_cluster"]
    assert policy_violations(cluster, policy) == []
    for change, expected in (
        ({"num_workers": 64}, "num_workers=64 is outside [0, 4]"),
        ({"node_type_id": "p4d.24xlarge"}, "node_type_id='p4d.24xlarge' is not in the policy's allowlist"),
        ({"data_security_mode": "NONE"}, "data_security_mode='NONE' but the policy fixes 'SINGLE_USER'"),
    ):
        broken = {**copy.deepcopy(cluster), **change}
        assert any(expected in p for p in policy_violations(broken, policy)), change
    untagged = copy.deepcopy(cluster)
    untagged["custom_tags"]["team"] = "someone-else"
    assert policy_violations(untagged, policy) == [
        "custom_tags.team='someone-else' but the policy fixes 'data-platform'"
    ]


def test_prod_must_run_as_a_service_principal() -> None:
    m = pattern()
    policy = json.loads(m.CLUSTER_POLICY_FILE.read_text())
    for target in m.TARGETS:
        assert bundle.target_problems(resolved(target), policy) == [], target
    prod = resolved("prod")
    as_person = bundle.TargetJob(
        prod.target, prod.mode, prod.settings, {"user_name": "me@example.com"}, prod.root_path, [], []
    )
    assert "prod must run as a service principal, not a person" in bundle.target_problems(as_person, policy)
    personal = bundle.TargetJob(
        prod.target, prod.mode, prod.settings, prod.run_as, "/Workspace/Users/me/.bundle", [], []
    )
    assert any("personal folder" in p for p in bundle.target_problems(personal, policy))
    paused = copy.deepcopy(prod.settings)
    paused["schedule"]["pause_status"] = "PAUSED"
    assert "the prod schedule must be unpaused" in bundle.target_problems(
        bundle.TargetJob("prod", "production", paused, prod.run_as, prod.root_path, [], []), policy
    )
    assert resolved("dev").settings["schedule"]["pause_status"] == "PAUSED"
    assert resolved("prod").settings["job_clusters"][0]["new_cluster"]["num_workers"] == 2, "prod override merged"


def test_terraform_files_parse_and_pin_their_providers(tmp_path: Path) -> None:
    m = pattern()
    for stack in ("databricks", "snowflake"):
        assert terraform.terraform_problems(m.TERRAFORM_DIR / stack) == [], stack
    broken = tmp_path / "stack"
    broken.mkdir()
    (broken / "main.tf").write_text(
        'terraform {\n  required_providers {\n    snowflake = { source = "snowflakedb/snowflake" }\n  }\n}\n'
        'variable "admin_password" {\n  type    = string\n  default = "hunter2"\n}\n'
        'resource "snowflake_user" "u" {\n  name     = var.user_name\n  password = var.admin_password\n}\n'
    )
    problems = terraform.terraform_problems(broken)
    assert "provider snowflake needs a source and a version constraint" in problems
    assert "var.user_name is used but not declared" in problems
    assert "variable admin_password looks secret: it must be sensitive and have no default" in problems


def test_migrations_are_versioned_and_ordered() -> None:
    m = pattern()
    names = sorted(p.name for p in m.MIGRATIONS_DIR.glob("*.sql"))
    versioned = [n for n in names if n.startswith("V")]
    assert versioned and all(n.split("__")[0][1:].count(".") == 2 for n in versioned)
    versions = [tuple(int(x) for x in n.split("__")[0][1:].split(".")) for n in versioned]
    assert len(set(versions)) == len(versions), "each version is used once"
    assert [n for n in names if not n.startswith("V")] == ["R__gold_views.sql"]
    databases = {
        k: v
        for block in terraform.parse_terraform(m.TERRAFORM_DIR / "snowflake").get("locals", ())
        for k, v in block.get("databases", {}).items()
    }
    assert databases == m.SNOWFLAKE_DATABASES


def test_the_gate_selects_tests_that_exist() -> None:
    import ast

    m = pattern()
    files = {"tests/databricks/test_03_cicd_deployment.py", "tests/test_release_validators.py"}
    for node in m.GATE_TESTS:
        path, _, name = node.partition("::")
        assert path in files, node
        tree = ast.parse((PROJECT_ROOT / path).read_text())
        assert name in {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}, node


# ---------------------------------------------------------------------------------- tools


@pytest.mark.parametrize(
    "workflow", sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.y*ml")), ids=lambda p: p.name
)
def test_actionlint_passes_on_every_workflow(workflow: Path) -> None:
    actionlint = require_tool("actionlint")
    result = subprocess.run(
        [actionlint, "-no-color", str(workflow)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


def test_deploy_workflow_keeps_the_promotion_rules() -> None:
    import yaml

    m = pattern()
    text = m.WORKFLOW_FILE.read_text()
    document = yaml.safe_load(text)
    assert workflow.workflow_problems(document, text) == []
    broken = copy.deepcopy(document)
    broken["jobs"]["deploy-production"]["needs"] = "test"
    broken["jobs"]["deploy-production"].pop("environment")
    broken["permissions"] = "write-all"
    problems = workflow.workflow_problems(broken, text)
    assert "deploy-production must need verify-staging" in problems
    assert "deploy-production must run in the protected environment 'production'" in problems
    assert "top-level permissions must be exactly contents: read" in problems


def test_terraform_fmt_is_clean() -> None:
    terraform = require_tool("terraform", installed_by_make_tools=False)
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", str(pattern().TERRAFORM_DIR)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


# ---------------------------------------------------------------------------------- release operations on Delta


def test_publish_verify_and_restore_on_small_tables(spark, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    from pyspark.testing import assertDataFrameEqual

    from expert.release import publish, rollback
    from expert.release.publish import drift_against_previous, read_version, rows_differ

    blue = spark.createDataFrame([(1, 10.0), (2, 20.0)], "day INT, revenue DOUBLE")
    green = spark.createDataFrame([(1, 10.0), (2, 25.0), (3, 30.0)], "day INT, revenue DOUBLE")
    staged_blue, staged_green, live = (str(workdir / n) for n in ("blue", "green", "live"))
    blue.write.format("delta").save(staged_blue)
    green.write.format("delta").save(staged_green)
    first = publish(spark, "1.0.0", "t", staged_blue, live)
    assert (first.blue_version, first.green_version) == (None, 0)
    second = publish(spark, "1.1.0", "t", staged_green, live)
    assert (second.blue_version, second.green_version) == (0, 1)
    assertDataFrameEqual(read_version(spark, live, 1), green)
    drift = drift_against_previous(spark, second, ["day"], ["revenue"], tolerance=0.1)
    assert drift is not None and drift.common_keys == 2 and drift.worst_relative_change == pytest.approx(0.25)
    assert not drift.passed
    restored = rollback(spark, second)
    assert restored == 2
    assert rows_differ(read_version(spark, live, restored), blue) == 0
    assertDataFrameEqual(spark.read.format("delta").load(live), blue)


def test_a_release_is_all_or_nothing_across_tables(spark, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    from pyspark.testing import assertDataFrameEqual

    from expert.release import Decision, Verification, read_release_log, release_tables

    old = spark.createDataFrame([(1, 1.0)], "day INT, revenue DOUBLE")
    new = spark.createDataFrame([(1, 2.0)], "day INT, revenue DOUBLE")
    staged = {}
    for table in ("sales", "funnel"):
        for name, frame in (("old", old), ("new", new)):
            frame.write.format("delta").save(str(workdir / f"{table}_{name}"))
        staged[table] = str(workdir / f"{table}_new")
    log = str(workdir / "log")
    live = lambda table: str(workdir / "live" / table)  # noqa: E731
    ok = lambda p: Verification(p, 0, (), None)  # noqa: E731
    first = release_tables(
        spark, "1.0.0", {t: str(workdir / f"{t}_old") for t in staged}, live=live, verify=ok, log_location=log
    )
    assert not first.failures and not first.restored

    only_funnel_fails = lambda p: Verification(p, int(p.table == "funnel"), (), None)  # noqa: E731
    second = release_tables(spark, "1.1.0", staged, live=live, verify=only_funnel_fails, log_location=log)
    assert second.failures == ["funnel: 1 live row(s) differ from the audited build"]
    assert set(second.restored) == {"sales", "funnel"}, "the table that verified is rolled back too"
    for table in staged:
        assertDataFrameEqual(spark.read.format("delta").load(live(table)), old)
    decisions = [(r.release, r.table, r.decision) for r in read_release_log(spark, log)]
    assert sorted(decisions) == sorted(
        [
            ("1.0.0", "sales", Decision.KEPT),
            ("1.0.0", "funnel", Decision.KEPT),
            ("1.1.0", "sales", Decision.ROLLED_BACK),
            ("1.1.0", "funnel", Decision.ROLLED_BACK),
        ]
    )


def test_the_job_task_entry_point_parses_its_arguments() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "lakehouse_task", pattern().DEPLOY / "databricks" / "lakehouse_task.py"
    )
    assert spec is not None and spec.loader is not None
    task = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(task)
    args = task.parse_args(["--task", "publish", "--lake-root", "/lake", "--landing", "/landing", "--release", "abc"])
    assert (args.task, args.release) == ("publish", "abc")
    with pytest.raises(SystemExit):
        task.parse_args(["--task", "deploy", "--lake-root", "/l", "--landing", "/x", "--release", "r"])


def test_audit_flags_each_kind_of_contract_breach(spark, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import date, datetime
    from decimal import Decimal

    from expert.release import audit_table, load_contracts

    contract = load_contracts(pattern().CONTRACTS_DIR)["gold_daily_sales"]
    schema = (
        "order_date DATE, orders BIGINT, units BIGINT, revenue DECIMAL(18,2), customers BIGINT, returned_orders BIGINT"
    )
    good = [(date(2026, 1, d), 5, 7, Decimal("100.00"), 4, 0) for d in range(1, 31)]
    location = str(workdir / "good")
    spark.createDataFrame(good, schema).write.format("delta").save(location)
    report = audit_table(spark, location, contract, now=datetime(2026, 1, 31))
    assert report.passed, report.failures
    bad = [*good[:20], good[0], (None, 1, 1, Decimal("-5.00"), 1, 0)]
    location = str(workdir / "bad")
    spark.createDataFrame(bad, schema).write.format("delta").save(location)
    failed = {f.check for f in audit_table(spark, location, contract, now=datetime(2026, 3, 1)).failures}
    assert failed == {
        "order_date is never null",
        "key (order_date) is unique",
        "order_date_unique",
        "one_row_per_day",
        "revenue_not_negative",
        "fresh: newest order_date ≤ 2 d old",
    }


# ---------------------------------------------------------------------------------- the whole pattern


@pytest.mark.slow
def test_pattern_promotes_rolls_back_and_blocks(pattern_run) -> None:  # type: ignore[no-untyped-def]
    outcome = pattern_run("databricks/03")
    assert outcome.exit_code == 0, outcome.report.error
    checks = {c.name: c for c in outcome.report.checks}
    assert checks["good release kept, subtle bug rolled back, contract breach blocked"].passed
    assert checks["gold_daily_sales: RESTORE brought back blue (v0) exactly"].passed
    assert checks["1.0.0 is live and equals the generator's ground truth"].passed
    assert checks["1.2.0 is blocked: the contract audit failed, nothing was published"].passed
    assert checks["ANALYTICS_PROD: rerunning schemachange applies nothing (idempotent)"].passed
    assert outcome.report.value("releases kept / rolled back / blocked") == "1 / 1 / 1"
    plan = [e for e in outcome.report.cloud_plan if not e.executed]
    assert sorted(e.service for e in plan) == [
        "databricks bundle",
        "databricks bundle",
        "github",
        "terraform",
        "terraform",
    ]
    deploy = next(e for e in plan if e.service == "databricks bundle" and e.language == "bash")
    assert deploy.text.splitlines() == [
        "cd deploy/databricks",
        "databricks bundle validate -t dev",
        "databricks bundle deploy -t dev",
    ], "the deploy workflow's own two commands"


@pytest.mark.slow
def test_production_history_and_release_log_tell_the_same_story(pattern_run, spark) -> None:  # type: ignore[no-untyped-def]
    from delta.tables import DeltaTable

    from expert.release import Decision, read_release_log

    outcome = pattern_run("databricks/03")
    live = outcome.workdir / "prod" / "live" / "gold_daily_sales"
    operations = [r["operation"] for r in DeltaTable.forPath(spark, str(live)).history().orderBy("version").collect()]
    assert operations == ["CREATE OR REPLACE TABLE AS SELECT", "CREATE OR REPLACE TABLE AS SELECT", "RESTORE"]
    log = read_release_log(spark, str(outcome.workdir / "prod" / "_release_log"))
    sales = [(r.release, r.decision) for r in log if r.table == "gold_daily_sales"]
    assert sales == [("1.0.0", Decision.KEPT), ("1.1.0", Decision.ROLLED_BACK), ("1.0.0", Decision.ALREADY_LIVE)]
