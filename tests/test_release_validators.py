"""The release validators on their own: bundle merging and references, cluster policies, Quartz cron.

Pure Python, no engine and no repository file: databricks/03 runs these in its unit-test gate
(`GATE_TESTS`) next to the checks of the committed bundle, policy, Terraform and migrations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from expert.release.bundle import (
    TargetJob,
    dag_problems,
    deep_merge,
    load_bundle,
    resolve_target,
    substitute,
    variable_assignment,
)
from expert.release.policy import flatten, policy_violations
from expert.release.schedule import quartz_cron_problems


def test_quartz_cron_validation() -> None:
    assert quartz_cron_problems("0 0 2 * * ?", "UTC") == []
    assert quartz_cron_problems("0 30 6 ? * MON-FRI", "Europe/Berlin") == []
    assert quartz_cron_problems("0 2 * * *", "UTC")[0].startswith("'0 2 * * *': Quartz cron has 6 or 7 fields")
    assert "hour field '25': 25 is outside 0-23" in quartz_cron_problems("0 0 25 * * ?", "UTC")
    assert "exactly one of day-of-month and day-of-week must be '?'" in quartz_cron_problems("0 0 2 * * *", "UTC")
    assert "unknown time zone 'Mars/Olympus'" in quartz_cron_problems("0 0 2 * * ?", "Mars/Olympus")


def test_target_overrides_merge_keyed_lists_by_key(tmp_path: Path) -> None:
    base = {
        "tasks": [{"task_key": "a", "max_retries": 1}, {"task_key": "b", "max_retries": 1}],
        "job_clusters": [{"job_cluster_key": "c", "new_cluster": {"num_workers": 1, "node_type_id": "m6gd.large"}}],
        "tags": {"team": "data"},
    }
    override = {
        "tasks": [{"task_key": "b", "max_retries": 0}, {"task_key": "new"}],
        "job_clusters": [{"job_cluster_key": "c", "new_cluster": {"num_workers": 4}}],
        "tags": {"env": "prod"},
    }
    merged = deep_merge(base, override)
    assert merged["tasks"] == [
        {"task_key": "a", "max_retries": 1},
        {"task_key": "b", "max_retries": 0},
        {"task_key": "new"},
    ]
    assert merged["job_clusters"][0]["new_cluster"] == {"num_workers": 4, "node_type_id": "m6gd.large"}
    assert merged["tags"] == {"team": "data", "env": "prod"}

    (tmp_path / "resources").mkdir()
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: b}\ninclude: [resources/*.yml]\n"
        "targets:\n  dev: {mode: development}\n"
        "  prod:\n    resources: {jobs: {j: {job_clusters: [{job_cluster_key: c, new_cluster: {num_workers: 2}}]}}}\n"
    )
    (tmp_path / "resources" / "job.yml").write_text(
        "resources: {jobs: {j: {name: 'job-${bundle.target}', schedule: {pause_status: UNPAUSED},"
        " job_clusters: [{job_cluster_key: c, new_cluster: {num_workers: 1}}]}}}\n"
    )
    document = load_bundle(tmp_path / "databricks.yml")
    context = {"workspace.current_user.userName": "ada@example.com"}
    dev = resolve_target(document, "dev", context, job_key="j", resource_dir=tmp_path, sync_root=tmp_path)
    prod = resolve_target(document, "prod", context, job_key="j", resource_dir=tmp_path, sync_root=tmp_path)
    assert dev.settings["name"] == "[dev ada] job-dev" and dev.settings["schedule"]["pause_status"] == "PAUSED"
    assert prod.settings["name"] == "job-prod" and prod.settings["job_clusters"][0]["new_cluster"]["num_workers"] == 2
    assert dev.root_path == "/Workspace/Users/ada@example.com/.bundle/b/dev"


def test_unresolved_references_are_reported() -> None:
    unresolved: list[str] = []
    assert substitute("${a}/${b}", {"a": "${c}", "c": "x"}, unresolved) == "x/${b}"
    assert unresolved == ["b"]
    job = TargetJob("staging", "production", {"name": "j"}, {}, "/Workspace/Shared", [], ["var.lake_root"])
    assert job.unresolved == ["var.lake_root"]
    tasks = {
        "job_clusters": [{"job_cluster_key": "c"}],
        "tasks": [
            {"task_key": "b", "depends_on": [{"task_key": "a"}], "job_cluster_key": "c"},
            {"task_key": "a", "job_cluster_key": "missing"},
        ],
    }
    assert dag_problems(tasks) == [
        "task b depends on a, which does not run before it",
        "task a uses an undefined job cluster",
    ]
    assert variable_assignment("lake_root=/Volumes/x=y") == ("lake_root", "/Volumes/x=y")
    with pytest.raises(argparse.ArgumentTypeError):
        variable_assignment("lake_root")


def test_each_policy_rule_type_is_enforced() -> None:
    policy = {
        "spark_version": {"type": "regex", "pattern": r"1[5-9]\..*"},
        "node_type_id": {"type": "allowlist", "values": ["m6gd.large"]},
        "instance_pool_id": {"type": "forbidden"},
        "runtime_engine": {"type": "blocklist", "values": ["PHOTON"]},
        "num_workers": {"type": "range", "minValue": 0, "maxValue": 4},
        "custom_tags.team": {"type": "fixed", "value": "data-platform"},
        "autotermination_minutes": {"type": "unlimited"},
        "cluster_type": {"type": "fixed", "value": "job"},
    }
    good = {
        "spark_version": "16.4.x",
        "node_type_id": "m6gd.large",
        "num_workers": 2,
        "custom_tags": {"team": "data-platform"},
    }
    assert policy_violations(good, policy) == []
    assert policy_violations({}, policy) == [], "absent attributes take the policy's defaults"
    bad = {
        "spark_version": "13.3.x",
        "node_type_id": "p4d.24xlarge",
        "instance_pool_id": "pool",
        "runtime_engine": "PHOTON",
        "num_workers": 9,
        "custom_tags": {"team": "other"},
        "autotermination_minutes": 10_000,
    }
    assert policy_violations(bad, policy) == [
        "spark_version='13.3.x' does not match '1[5-9]\\\\..*'",
        "node_type_id='p4d.24xlarge' is not in the policy's allowlist ['m6gd.large']",
        "instance_pool_id is forbidden by the policy",
        "runtime_engine='PHOTON' is blocked by the policy",
        "num_workers=9 is outside [0, 4]",
        "custom_tags.team='other' but the policy fixes 'data-platform'",
    ]
    assert flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}
