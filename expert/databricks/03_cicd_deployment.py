"""CI/CD deployment: the pipeline as a job, promoted test → staging → production, with rollback.

Why it matters in production: most data incidents are not infrastructure failures but releases:
a changed aggregation that double-counts, a renamed column that breaks a dashboard. A platform
that deploys by clicking cannot review, test, repeat or undo a change. Here every part of the
deployment is code that is checked before it runs: the Databricks job (typed SDK classes → an
Asset Bundle), the workspace and Snowflake infrastructure (Terraform), the Snowflake schema
(versioned migrations), the data promise (contracts) and the order of stages (a GitHub workflow).

Learning objectives:
- Define the medallion pipeline as a Databricks job from typed databricks-sdk classes, render it as
  an Asset Bundle with dev / staging / prod targets, and validate every target properly (the
  SDK's `from_dict` silently drops unknown keys), including the cluster policy it must satisfy.
- Promote releases with write-audit-publish: a unit-test gate, a staging build, a contract audit,
  an atomic blue/green publish of Delta tables, verification in production and an automated
  `RESTORE` when verification fails (shown for a good, a bad and a blocked release).
- Keep the platform as Terraform (Databricks and Snowflake providers) and the Snowflake schema as
  schemachange migrations, applied in order, once, with a change-history table.
- Check the repository's own deployment workflow with actionlint.

Run it:
    python expert/databricks/03_cicd_deployment.py [--rows N] [--target dev|staging|prod]
    python expert/databricks/03_cicd_deployment.py --write-bundle   # regenerate the bundle's job file
    expert run databricks/03

Locally: Spark + Delta Lake for the releases, schemachange against fakesnow's Snowflake server on
127.0.0.1, Terraform files formatted (`terraform fmt`, when installed) and parsed, actionlint
when installed. With credentials in .env: the job is created or reset in the workspace through the
SDK, and schemachange migrates the real account; `terraform apply` stays opt-in (--apply-infra).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import yaml

from expert import PROJECT_ROOT
from expert.lakehouse import GOLD_DAILY_FUNNEL, GOLD_DAILY_SALES, GOLD_SPECS, GoldSpec, MedallionLayout
from expert.lakehouse.delta_ops import history
from expert.runtime.data import DAYS, EPOCH
from expert.runtime.pattern import PatternRun, run_pattern
from expert.runtime.snowflake import local_server

if TYPE_CHECKING:
    from databricks.sdk.service.jobs import JobSettings
    from pyspark.sql import SparkSession

    from expert.release import AuditReport, Publication, Verification
    from expert.runtime.snowflake import SnowflakeSession

DEPLOY = PROJECT_ROOT / "deploy"
BUNDLE_DIR = DEPLOY / "databricks"
BUNDLE_FILE = BUNDLE_DIR / "databricks.yml"
JOB_RESOURCE_FILE = BUNDLE_DIR / "resources" / "lakehouse_job.yml"
TASK_ENTRY_POINT = BUNDLE_DIR / "lakehouse_task.py"
CONTRACTS_DIR = DEPLOY / "contracts"
TERRAFORM_DIR = DEPLOY / "terraform"
CLUSTER_POLICY_FILE = TERRAFORM_DIR / "databricks" / "cluster_policy.json"
MIGRATIONS_DIR = DEPLOY / "snowflake" / "migrations"
WORKFLOW_FILE = PROJECT_ROOT / ".github" / "workflows" / "deploy.yml"
TEST_FILE = "tests/databricks/test_03_cicd_deployment.py"

JOB_KEY = "lakehouse_medallion"
JOB_NAME = "lakehouse-medallion-${bundle.target}"
"""One job per target, so staging and prod can share a workspace without a name clash."""
TARGETS = ("dev", "staging", "prod")
PIPELINE_TASKS = ("bronze", "silver", "gold", "audit", "publish")
SNOWFLAKE_DATABASES = {"staging": "ANALYTICS_STAGING", "prod": "ANALYTICS_PROD"}
CLOCK = (EPOCH + timedelta(days=DAYS)).replace(tzinfo=None)
"""The data generator's end of time: freshness is measured against it, so every run is reproducible."""

LOCAL_DEPLOY_VARIABLES = {"deployer_application_id": "11111111-2222-3333-4444-555555555555"}
"""Values CI passes with `--var` at deploy time; locally a sample stands in so every target resolves."""

GATE_TESTS = (
    f"{TEST_FILE}::test_typed_job_round_trips_and_matches_the_committed_bundle",
    f"{TEST_FILE}::test_from_dict_drops_a_misspelled_key_that_the_validator_reports",
    f"{TEST_FILE}::test_cluster_policy_rejects_an_oversized_cluster",
    f"{TEST_FILE}::test_prod_must_run_as_a_service_principal",
    f"{TEST_FILE}::test_quartz_cron_validation",
    f"{TEST_FILE}::test_terraform_files_parse_and_pin_their_providers",
    f"{TEST_FILE}::test_migrations_are_versioned_and_ordered",
)
"""The unit tests the promotion runs as its first gate: pure Python, seconds, no engine."""


# ---------------------------------------------------------------------------------- jobs as code


def build_job_settings() -> JobSettings:
    """The medallion pipeline as a typed job: five tasks, one policy-governed job cluster.

    Why typed classes: a misspelled field is an AttributeError where it is written, enums close
    the vocabularies (data security mode, pause status), and the IDE knows every option.
    """
    from databricks.sdk.service import compute, jobs

    cluster = jobs.JobCluster(
        job_cluster_key="pipeline",
        new_cluster=compute.ClusterSpec(
            spark_version="16.4.x-scala2.13",
            node_type_id="m6gd.large",
            num_workers=1,
            data_security_mode=compute.DataSecurityMode.SINGLE_USER,
            runtime_engine=compute.RuntimeEngine.STANDARD,
            policy_id="${var.cluster_policy_id}",
            apply_policy_default_values=True,
            custom_tags={"team": "data-platform", "cost_center": "lakehouse"},
        ),
    )
    arguments = ["--lake-root", "${var.lake_root}", "--landing", "${var.landing}", "--release", "${bundle.git.commit}"]
    tasks = []
    for previous, task in zip((None, *PIPELINE_TASKS), PIPELINE_TASKS, strict=False):
        tasks.append(
            jobs.Task(
                task_key=task,
                description=f"medallion step: {task}",
                depends_on=[jobs.TaskDependency(task_key=previous)] if previous else None,
                job_cluster_key="pipeline",
                spark_python_task=jobs.SparkPythonTask(
                    python_file="../lakehouse_task.py", parameters=["--task", task, *arguments]
                ),
                # Ingestion and transformation are idempotent (checkpoints, MERGE): safe to retry.
                # Publishing is not retried: it verifies and rolls back on its own.
                max_retries=1 if task in ("bronze", "silver", "gold") else 0,
                timeout_seconds=3600,
            )
        )
    return jobs.JobSettings(
        name=JOB_NAME,
        description="Medallion pipeline with write-audit-publish of the gold tables (databricks/03).",
        tags={"pipeline": "lakehouse", "managed_by": "bundle"},
        job_clusters=[cluster],
        tasks=tasks,
        max_concurrent_runs=1,
        timeout_seconds=4 * 3600,
        queue=jobs.QueueSettings(enabled=True),
        schedule=jobs.CronSchedule(
            quartz_cron_expression="0 0 2 * * ?", timezone_id="UTC", pause_status=jobs.PauseStatus.PAUSED
        ),
        email_notifications=jobs.JobEmailNotifications(on_failure=["${var.alert_email}"]),
        health=jobs.JobsHealthRules(
            rules=[
                jobs.JobsHealthRule(
                    metric=jobs.JobsHealthMetric.RUN_DURATION_SECONDS,
                    op=jobs.JobsHealthOperator.GREATER_THAN,
                    value=2 * 3600,
                )
            ]
        ),
    )


def job_resource_yaml(settings: JobSettings) -> str:
    """The bundle resource file for the job, rendered from the typed settings."""
    header = (
        "# Generated from typed databricks-sdk classes by expert/databricks/03_cicd_deployment.py\n"
        "# (`--write-bundle`). Do not edit by hand: change build_job_settings() and regenerate.\n"
    )
    document = {"resources": {"jobs": {JOB_KEY: settings.as_dict()}}}
    return header + yaml.safe_dump(document, sort_keys=False, width=120)


def round_trip_problems(payload: Mapping[str, Any]) -> list[str]:
    """Keys the SDK does not know: `from_dict` drops them silently, so compare before and after."""
    from databricks.sdk.service.jobs import JobSettings

    problems: list[str] = []
    _diff(payload, JobSettings.from_dict(dict(payload)).as_dict(), "", problems)
    return problems


def _diff(before: Any, after: Any, path: str, problems: list[str]) -> None:
    if isinstance(before, Mapping):
        after = after if isinstance(after, Mapping) else {}
        for key, value in before.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                problems.append(f"{where}: unknown to the Jobs API (dropped by from_dict)")
            else:
                _diff(value, after[key], where, problems)
    elif isinstance(before, list) and isinstance(after, list):
        for i, (b, a) in enumerate(zip(before, after, strict=False)):
            _diff(b, a, f"{path}[{i}]", problems)
    elif before != after and str(before) != str(after):
        problems.append(f"{path}: {before!r} became {after!r}")


def load_bundle() -> dict[str, Any]:
    """databricks.yml with its included resource files merged in (the bundle's own include rule)."""
    bundle = yaml.safe_load(BUNDLE_FILE.read_text())
    for pattern in bundle.get("include", ()):
        for path in sorted(BUNDLE_DIR.glob(pattern)):
            included = yaml.safe_load(path.read_text()) or {}
            _deep_merge(bundle, included)
    return bundle


KEYED_LISTS = {"tasks": "task_key", "job_clusters": "job_cluster_key"}
"""Lists a target override merges element by element (by key), as the bundle CLI does."""


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        elif key in KEYED_LISTS and isinstance(value, list) and isinstance(base.get(key), list):
            by_key = {item[KEYED_LISTS[key]]: item for item in base[key]}
            for item in value:
                if item[KEYED_LISTS[key]] in by_key:
                    _deep_merge(by_key[item[KEYED_LISTS[key]]], item)
                else:
                    base[key].append(copy.deepcopy(item))
        else:
            base[key] = copy.deepcopy(value)
    return base


@dataclass(frozen=True)
class TargetJob:
    """One target's job as it would be deployed: resolved settings plus what the bundle adds."""

    target: str
    mode: str
    settings: dict[str, Any]
    run_as: dict[str, str]
    root_path: str
    permissions: list[dict[str, str]]
    unresolved: list[str]


_REFERENCE = re.compile(r"\$\{([a-zA-Z0-9_.]+)\}")


def resolve_target(bundle: Mapping[str, Any], target: str, context: Mapping[str, str]) -> TargetJob:
    """Merge a target's overrides into the job and resolve `${...}` references, like the bundle CLI.

    `context` supplies what only a deployment knows (current user, git commit, --var values).
    """
    spec = bundle["targets"][target] or {}
    job = _deep_merge(
        copy.deepcopy(bundle["resources"]["jobs"][JOB_KEY]),
        (spec.get("resources") or {}).get("jobs", {}).get(JOB_KEY, {}),
    )
    mode = spec.get("mode", "")
    user = context["workspace.current_user.userName"]
    root_path = (spec.get("workspace") or {}).get(
        "root_path"
    ) or f"/Workspace/Users/{user}/.bundle/${{bundle.name}}/${{bundle.target}}"
    values: dict[str, str] = {
        "bundle.name": bundle["bundle"]["name"],
        "bundle.target": target,
        **context,
    }
    for name, declared in (bundle.get("variables") or {}).items():
        chosen = (spec.get("variables") or {}).get(name, declared.get("default"))
        if chosen is None and "lookup" in declared:
            kind, lookup_name = next(iter(declared["lookup"].items()))
            chosen = context.get(f"lookup.{kind}.{lookup_name}", f"<{kind} id of {lookup_name!r}>")
        if chosen is None:
            chosen = context.get(f"var.{name}")
        if chosen is not None:
            values[f"var.{name}"] = str(chosen)
    values["workspace.root_path"] = _substitute(root_path, values, [])
    values["workspace.file_path"] = values["workspace.root_path"] + "/files"
    unresolved: list[str] = []
    if mode == "development":
        job["name"] = f"[dev {user.split('@')[0]}] {job['name']}"
        job.setdefault("schedule", {})["pause_status"] = "PAUSED"
    for task in job.get("tasks", ()):
        python_task = task.get("spark_python_task")
        if python_task and not python_task["python_file"].startswith(("/", "${")):
            local = (JOB_RESOURCE_FILE.parent / python_task["python_file"]).resolve()
            python_task["python_file"] = f"${{workspace.file_path}}/{local.relative_to(PROJECT_ROOT).as_posix()}"
    settings = _resolve_all(job, values, unresolved)
    return TargetJob(
        target,
        mode,
        settings,
        _resolve_all(spec.get("run_as") or {}, values, unresolved),
        values["workspace.root_path"],
        list(spec.get("permissions") or ()),
        sorted(set(unresolved)),
    )


def _substitute(text: str, values: Mapping[str, str], unresolved: list[str]) -> str:
    for _ in range(5):
        replaced = _REFERENCE.sub(lambda m: values.get(m.group(1), m.group(0)), text)
        if replaced == text:
            break
        text = replaced
    unresolved.extend(m.group(1) for m in _REFERENCE.finditer(text))
    return text


def _resolve_all(value: Any, values: Mapping[str, str], unresolved: list[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _resolve_all(v, values, unresolved) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_all(v, values, unresolved) for v in value]
    if isinstance(value, str):
        return _substitute(value, values, unresolved)
    return value


def policy_violations(cluster: Mapping[str, Any], policy: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Evaluate a job cluster spec against a Databricks cluster policy definition.

    Supports the policy types the pipeline's policy uses: fixed, allowlist, blocklist, range,
    regex, forbidden, unlimited. Absent attributes take the policy default (the job sets
    `apply_policy_default_values`), so only an explicit value can break a rule.
    """
    flat = _flatten(cluster)
    flat.setdefault("cluster_type", "job")
    problems = []
    for attribute, rule in policy.items():
        kind, value = rule["type"], flat.get(attribute)
        if kind == "forbidden" and value is not None:
            problems.append(f"{attribute} is forbidden by the policy")
        if value is None or kind in ("unlimited", "forbidden"):
            continue
        if kind == "fixed" and value != rule["value"]:
            problems.append(f"{attribute}={value!r} but the policy fixes {rule['value']!r}")
        elif kind == "allowlist" and value not in rule["values"]:
            problems.append(f"{attribute}={value!r} is not in the policy's allowlist {rule['values']}")
        elif kind == "blocklist" and value in rule["values"]:
            problems.append(f"{attribute}={value!r} is blocked by the policy")
        elif kind == "range" and not rule.get("minValue", float("-inf")) <= value <= rule.get("maxValue", float("inf")):
            problems.append(f"{attribute}={value} is outside [{rule.get('minValue')}, {rule.get('maxValue')}]")
        elif kind == "regex" and not re.fullmatch(rule["pattern"], str(value)):
            problems.append(f"{attribute}={value!r} does not match {rule['pattern']!r}")
    return problems


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(_flatten(item, f"{name}."))
        else:
            flat[name] = item
    return flat


_QUARTZ_FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 1, 7),
)


def quartz_cron_problems(expression: str, timezone_id: str) -> list[str]:
    """Check a Quartz cron expression (the Jobs scheduler's dialect) and its time zone."""
    problems = []
    fields = expression.split()
    if len(fields) not in (6, 7):
        return [f"{expression!r}: Quartz cron has 6 or 7 fields (seconds first), found {len(fields)}"]
    for text, (name, low, high) in zip(fields, _QUARTZ_FIELDS, strict=False):
        if not re.fullmatch(r"[0-9A-Z*?/,#LW-]+", text):
            problems.append(f"{name} field {text!r} has characters Quartz does not allow")
            continue
        for number in re.findall(r"\d+", text.split("/")[0].split("#")[0]):
            if not low <= int(number) <= high:
                problems.append(f"{name} field {text!r}: {number} is outside {low}-{high}")
    if (fields[3] == "?") == (fields[5] == "?"):
        problems.append("exactly one of day-of-month and day-of-week must be '?'")
    try:
        ZoneInfo(timezone_id)
    except (KeyError, ValueError):
        problems.append(f"unknown time zone {timezone_id!r}")
    return problems


def target_problems(job: TargetJob, policy: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every reason a target's job must not be deployed: unknown keys, policy, DAG, schedule, identity."""
    settings = job.settings
    problems = [f"unresolved reference ${{{r}}}" for r in job.unresolved]
    problems += round_trip_problems(settings)
    for cluster in settings.get("job_clusters", ()):
        problems += [f"{cluster['job_cluster_key']}: {p}" for p in policy_violations(cluster["new_cluster"], policy)]
    problems += _dag_problems(settings)
    if settings.get("max_concurrent_runs") != 1:
        problems.append("max_concurrent_runs must be 1: two publishes must never race")
    return problems + _schedule_and_identity_problems(job)


def _dag_problems(settings: Mapping[str, Any]) -> list[str]:
    """Tasks depend only on tasks that run before them, on clusters the job defines."""
    problems = []
    keys = [t["task_key"] for t in settings.get("tasks", ())]
    clusters = {c["job_cluster_key"] for c in settings.get("job_clusters", ())}
    for task in settings.get("tasks", ()):
        for dependency in task.get("depends_on", ()):
            upstream = dependency["task_key"]
            if upstream not in keys or keys.index(upstream) >= keys.index(task["task_key"]):
                problems.append(f"task {task['task_key']} depends on {upstream}, which does not run before it")
        if task.get("job_cluster_key") not in clusters:
            problems.append(f"task {task['task_key']} uses an undefined job cluster")
    return problems


def _schedule_and_identity_problems(job: TargetJob) -> list[str]:
    """Schedules valid (paused in dev, running in prod); shared targets owned by a service principal."""
    schedule = job.settings.get("schedule") or {}
    problems = []
    if schedule:
        problems += quartz_cron_problems(schedule.get("quartz_cron_expression", ""), schedule.get("timezone_id", ""))
    if job.target == "dev" and schedule.get("pause_status") != "PAUSED":
        problems.append("dev schedules must be paused (a personal copy must not run nightly)")
    if job.target == "prod" and schedule.get("pause_status") != "UNPAUSED":
        problems.append("the prod schedule must be unpaused")
    if job.target in ("staging", "prod"):
        if job.mode != "production":
            problems.append(f"{job.target} must use mode: production")
        if not job.run_as.get("service_principal_name") or job.run_as.get("user_name"):
            problems.append(f"{job.target} must run as a service principal, not a person")
        if "/Users/" in job.root_path or "~" in job.root_path:
            problems.append(f"{job.target} deploys under a personal folder: {job.root_path}")
        if "current_user" in json.dumps(job.settings):
            problems.append(f"{job.target} settings depend on who deploys")
    return problems


def deploy_job(run: PatternRun, job: TargetJob) -> None:
    """Create or reset the job in the workspace: idempotent, found by name (cloud mode only)."""
    from databricks.sdk.service.jobs import JobSettings

    from expert.runtime.databricks import connect_workspace

    client = connect_workspace(run.settings.databricks)
    settings = JobSettings.from_dict(job.settings)
    existing = [j for j in client.jobs.list(name=settings.name) if j.job_id is not None]
    if existing:
        client.jobs.reset(existing[0].job_id, new_settings=settings)
        run.say(f"reset job {settings.name!r} (job_id {existing[0].job_id}): same id, new settings")
    else:
        created = client.jobs.create(**{name: getattr(settings, name) for name in settings.__dataclass_fields__})
        run.say(f"created job {settings.name!r} (job_id {created.job_id})")
    run.check("exactly one job with this name exists", len(list(client.jobs.list(name=settings.name))) == 1)


def jobs_as_code(run: PatternRun) -> dict[str, TargetJob]:
    """Build the typed job, check the committed bundle file and validate every target."""
    run.step("Jobs as code: typed job → Asset Bundle, validated for dev / staging / prod")
    settings = build_job_settings()
    rendered = job_resource_yaml(settings)
    if run.args.write_bundle:
        JOB_RESOURCE_FILE.parent.mkdir(parents=True, exist_ok=True)
        JOB_RESOURCE_FILE.write_text(rendered)
        run.say(f"wrote {JOB_RESOURCE_FILE.relative_to(PROJECT_ROOT)}")
    committed = JOB_RESOURCE_FILE.read_text() if JOB_RESOURCE_FILE.is_file() else ""
    run.check(
        "the committed bundle job file is exactly what the typed classes render",
        committed == rendered,
        f"{JOB_RESOURCE_FILE.relative_to(PROJECT_ROOT)}"
        + ("" if committed == rendered else ": run with --write-bundle"),
    )
    run.check("typed settings round-trip through the SDK unchanged", not round_trip_problems(settings.as_dict()))

    typo = {**settings.as_dict(), "max_concurent_runs": 5}
    from databricks.sdk.service.jobs import JobSettings

    dropped = "max_concurent_runs" not in JobSettings.from_dict(typo).as_dict()
    caught = round_trip_problems(typo)
    run.check(
        "a misspelled key is dropped silently by from_dict and reported by the round-trip check",
        dropped and caught == ["max_concurent_runs: unknown to the Jobs API (dropped by from_dict)"],
        caught[0] if caught else "not caught",
    )

    bundle = load_bundle()
    policy = json.loads(CLUSTER_POLICY_FILE.read_text())
    context = {
        "workspace.current_user.userName": "learner@example.com",
        "bundle.git.commit": git_commit(),
        **{f"var.{k}": v for k, v in LOCAL_DEPLOY_VARIABLES.items()},
        **{f"var.{k}": v for k, v in run.args.var},
    }
    resolved = {target: resolve_target(bundle, target, context) for target in TARGETS}
    rows = []
    for target, job in resolved.items():
        problems = target_problems(job, policy)
        cluster = job.settings["job_clusters"][0]["new_cluster"]
        rows.append(
            {
                "target": target,
                "mode": job.mode,
                "job name": job.settings["name"],
                "runs as": job.run_as.get("service_principal_name", "the deploying user")[:13],
                "schedule": job.settings["schedule"]["pause_status"],
                "workers": cluster["num_workers"],
                "problems": len(problems),
            }
        )
        run.check(
            f"{target}: job settings valid (SDK round trip, policy, identity, schedule, DAG)",
            not problems,
            "; ".join(problems) or f"{len(job.settings['tasks'])} tasks",
        )
    run.table(rows, title="The job per target (resolved as `databricks bundle deploy -t <target>` would)")
    names = [job.settings["name"] for job in resolved.values()]
    run.check("every target deploys a job of its own name", len(set(names)) == len(names), ", ".join(names))
    oversized = copy.deepcopy(resolved["prod"].settings["job_clusters"][0]["new_cluster"])
    oversized["num_workers"] = 64
    run.check(
        "the cluster policy rejects a 64-worker cluster",
        bool(policy_violations(oversized, policy)),
        policy_violations(oversized, policy)[0] if policy_violations(oversized, policy) else "accepted",
    )

    return resolved


def deploy_job_to_target(run: PatternRun, resolved: Mapping[str, TargetJob]) -> None:
    """Deploy the job of `--target` through the SDK in cloud mode; locally show the exact payload."""
    chosen = resolved[run.args.target]
    payload = run.workdir / "jobs" / f"{run.args.target}.json"
    payload.parent.mkdir(parents=True, exist_ok=True)
    payload.write_text(json.dumps(chosen.settings, indent=2))
    if run.settings.databricks.is_cloud:
        deploy_job(run, chosen)
    else:
        run.cloud_only_step(
            "databricks job",
            f"jobs.list(name={chosen.settings['name']!r}) → jobs.reset(job_id, settings) or jobs.create(settings)\n"
            f"payload: {payload}",
            "no Databricks workspace is configured (set DATABRICKS_HOST and a token in .env)",
        )


def git_commit() -> str:
    """The commit being deployed (what `${bundle.git.commit}` resolves to)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


# ---------------------------------------------------------------------------------- infrastructure as code


def terraform_binary() -> str | None:
    found = shutil.which("terraform") or shutil.which("tofu")
    local = PROJECT_ROOT / ".cache" / "bin" / "terraform"
    return found or (str(local) if local.is_file() else None)


def parse_terraform(directory: Path) -> dict[str, Any]:
    """Every .tf file of one stack parsed with python-hcl2, merged per block type.

    Plain values (quotes stripped, no comment or block markers), as earlier python-hcl2 releases
    returned them; an expression stays as its `${...}` text.
    """
    import hcl2
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            for block, items in hcl2.load(handle, serialization_options=options).items():
                merged.setdefault(block, []).extend(items)
    return merged


_VAR_REFERENCE = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)")
_SECRET_NAME = re.compile(r"(password|secret|token|private_key)", re.IGNORECASE)


def terraform_problems(directory: Path) -> list[str]:
    """What `terraform validate` cannot tell without provider downloads, checked from the parse."""
    tf = parse_terraform(directory)
    problems = []
    providers = [p for block in tf.get("terraform", ()) for p in block.get("required_providers", ())]
    for entry in providers:
        for name, spec in entry.items():
            if not isinstance(spec, Mapping) or not spec.get("source") or not spec.get("version"):
                problems.append(f"provider {name} needs a source and a version constraint")
    if not providers:
        problems.append("no required_providers block")
    declared: dict[str, Mapping[str, Any]] = {}
    for block in tf.get("variable", ()):
        declared.update(block)
    text = "\n".join(p.read_text() for p in sorted(directory.glob("*.tf")))
    used = set(_VAR_REFERENCE.findall(text))
    problems += [f"var.{v} is used but not declared" for v in sorted(used - set(declared))]
    problems += [f"variable {v} is declared but never used" for v in sorted(set(declared) - used)]
    for name, spec in declared.items():
        if _SECRET_NAME.search(name) and (not spec.get("sensitive") or "default" in spec):
            problems.append(f"variable {name} looks secret: it must be sensitive and have no default")
    for match in re.finditer(r'(password|private_key|token|client_secret)\s*=\s*"[^"$]', text):
        problems.append(f"a literal credential is assigned: {match.group(0)}")
    return problems


def infrastructure_as_code(run: PatternRun) -> dict[str, Any]:
    """Format-check and parse both Terraform stacks; apply them only in the cloud, on request."""
    run.step("Infrastructure as code: Terraform for the workspace policy and the Snowflake platform")
    stacks = sorted(p for p in TERRAFORM_DIR.iterdir() if p.is_dir())
    binary = terraform_binary()
    if binary:
        fmt = subprocess.run(
            [binary, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        version = subprocess.run(
            [binary, "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.splitlines()[0]
        run.check(
            f"`terraform fmt -check` is clean ({version})", fmt.returncode == 0, fmt.stdout.strip()[:200] or "no diff"
        )
    else:
        run.note("terraform is not installed here: formatting is not checked (the parse below still runs)")
    rows = []
    parsed = {}
    for stack in stacks:
        tf = parse_terraform(stack)
        parsed[stack.name] = tf
        problems = terraform_problems(stack)
        resources = [
            f"{kind}.{name}" for block in tf.get("resource", ()) for kind, named in block.items() for name in named
        ]
        providers = sorted(
            {
                f"{n}: {s['source']} {s['version']}"
                for b in tf.get("terraform", ())
                for e in b.get("required_providers", ())
                for n, s in e.items()
            }
        )
        rows.append(
            {
                "stack": stack.name,
                "providers": "; ".join(providers),
                "resources": len(resources),
                "variables": sum(len(b) for b in tf.get("variable", ())),
                "problems": len(problems),
            }
        )
        run.check(
            f"{stack.name}: parses, providers pinned, variables declared and used, secrets sensitive",
            not problems,
            "; ".join(problems) or f"{len(resources)} resources",
        )
    run.table(rows, title="Terraform stacks (parsed with python-hcl2)")

    bundle = yaml.safe_load(BUNDLE_FILE.read_text())
    lookup = bundle["variables"]["cluster_policy_id"]["lookup"]["cluster_policy"]
    policy_names = [
        r["name"]
        for block in parsed["databricks"].get("resource", ())
        for r in block.get("databricks_cluster_policy", {}).values()
    ]
    run.check(
        "the bundle looks up the cluster policy Terraform creates",
        lookup in policy_names,
        f"{lookup!r} in {policy_names}",
    )
    databases = {k: v for block in parsed["snowflake"].get("locals", ()) for k, v in block.get("databases", {}).items()}
    run.check(
        "Terraform creates exactly the databases the migrations deploy to",
        databases == SNOWFLAKE_DATABASES,
        str(databases),
    )
    run.note(
        "`terraform init` / `validate` need the providers from the Terraform registry, which this machine cannot reach: validation here is fmt + parse + the static rules above."
    )
    return parsed


def apply_infrastructure(run: PatternRun) -> None:
    """`terraform init` + `apply` for both stacks: only in cloud mode, and only when asked to."""
    binary = terraform_binary()
    stacks = sorted(p for p in TERRAFORM_DIR.iterdir() if p.is_dir())
    for stack in stacks:
        command = f"terraform -chdir={stack.relative_to(PROJECT_ROOT)} init -backend-config=... && terraform -chdir={stack.relative_to(PROJECT_ROOT)} apply"
        if run.args.apply_infra and binary and run.settings.databricks.is_cloud and run.settings.snowflake.is_cloud:
            for args in (["init", "-input=false"], ["apply", "-input=false", "-auto-approve"]):
                result = subprocess.run([binary, f"-chdir={stack}", *args], timeout=1800, check=False)
                run.check(f"terraform {args[0]} {stack.name}", result.returncode == 0, f"exit {result.returncode}")
        else:
            reason = "opt-in: pass --apply-infra with both workspaces configured (it creates billable resources)"
            if not (run.settings.databricks.is_cloud and run.settings.snowflake.is_cloud):
                reason = "needs Databricks and Snowflake credentials, provider downloads and remote state"
            run.cloud_only_step("terraform", command, reason)


# ---------------------------------------------------------------------------------- snowflake migrations


def schemachange_environment(run: PatternRun, server: Mapping[str, Any] | None) -> dict[str, str]:
    """The SNOWFLAKE_* variables schemachange reads: the local server's, or the account's from .env."""
    if server is not None:
        return {
            "SNOWFLAKE_ACCOUNT": server["account"],
            "SNOWFLAKE_USER": server["user"],
            "SNOWFLAKE_PASSWORD": server["password"],
            "SNOWFLAKE_HOST": server["host"],
            "SNOWFLAKE_PORT": str(server["port"]),
            "SNOWFLAKE_PROTOCOL": server["protocol"],
            "SNOWFLAKE_SESSION_PARAMETERS": json.dumps(server["session_parameters"]),
        }
    config = run.settings.snowflake
    env = {}
    for key in config.spec.keys:
        if key in ("SNOWFLAKE_DATABASE", "SNOWFLAKE_SCHEMA", "SNOWFLAKE_LOGIN_TIMEOUT"):
            continue
        secret = config.secret(key) if key in config.spec.secrets else None
        value = secret.get_secret_value() if secret is not None else config.get(key)
        if value:
            env[key] = value
    return env


@contextlib.contextmanager
def _stdout_to(path: Path) -> Iterator[None]:
    """Send file descriptor 1 to a log (schemachange's structlog writes to the original stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with path.open("a") as log:
        os.dup2(log.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


@dataclass(frozen=True)
class MigrationRun:
    database: str
    exit_code: int
    applied: int
    seconds: float


def schemachange_deploy(env: Mapping[str, str], database: str, log: Path, history: SnowflakeSession) -> MigrationRun:
    """Run schemachange's own `deploy` command (in-process) against one database."""
    from schemachange.cli import main as schemachange_main

    table = f"{database}.SCHEMACHANGE.CHANGE_HISTORY"
    before = _history_count(history, table)
    argv = [
        "schemachange",
        "deploy",
        "--config-folder",
        str(MIGRATIONS_DIR.parent),
        "--root-folder",
        str(MIGRATIONS_DIR),
        "-d",
        database,
        "-c",
        table,
        "--create-change-history-table",
        "-L",
        "INFO",
    ]
    saved_env = {k: os.environ.get(k) for k in env}
    saved_argv = sys.argv
    started = time.perf_counter()
    code = 0
    try:
        os.environ.update(env)
        sys.argv = argv
        with _stdout_to(log):
            schemachange_main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = saved_argv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return MigrationRun(database, code, _history_count(history, table) - before, time.perf_counter() - started)


def _history_count(session: SnowflakeSession, table: str) -> int:
    """Successful scripts recorded in a change-history table (0 before its first deploy)."""
    import snowflake.connector

    try:
        return int(session.scalar(f"SELECT COUNT(*) FROM {table} WHERE STATUS = 'Success'"))
    except snowflake.connector.errors.ProgrammingError:
        return 0


@contextlib.contextmanager
def snowflake_target(run: PatternRun) -> Iterator[tuple[dict[str, str], SnowflakeSession]]:
    """Environment for schemachange plus a session on the same Snowflake (local server or account)."""
    from expert.runtime.snowflake import SnowflakeSession

    if run.settings.snowflake.is_cloud:
        with run.snowflake(database=SNOWFLAKE_DATABASES["prod"], schema="PUBLIC") as session:
            yield schemachange_environment(run, None), session
        return
    import snowflake.connector

    with local_server() as server:
        connection = snowflake.connector.connect(**server)
        try:
            session = SnowflakeSession(connection, "local", SNOWFLAKE_DATABASES["prod"], "PUBLIC", run.narrator)
            # The server's in-memory account lives as long as this process: start each run empty.
            for database in SNOWFLAKE_DATABASES.values():
                for schema in ("GOLD", "SCHEMACHANGE"):
                    session.execute(f"DROP SCHEMA IF EXISTS {database}.{schema} CASCADE")
            yield schemachange_environment(run, server), session
        finally:
            connection.close()


def snowflake_migrations(run: PatternRun, env: Mapping[str, str], session: SnowflakeSession, database: str) -> None:
    """Apply the versioned migrations to one environment's database; a second apply changes nothing."""
    scripts = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    versioned = [s for s in scripts if s.startswith("V")]
    where = "fakesnow's Snowflake server on 127.0.0.1" if session.is_local else "the Snowflake account from .env"
    run.say(
        f"schemachange: {len(versioned)} versioned + {len(scripts) - len(versioned)} repeatable script(s) → {database} on {where}"
    )
    log = run.workdir / "schemachange.log"
    first = schemachange_deploy(env, database, log, session)
    second = schemachange_deploy(env, database, log, session)
    run.check(
        f"{database}: every migration applied once, in order",
        first.exit_code == 0 and first.applied == len(scripts),
        f"{first.applied} applied in {first.seconds:.1f} s (log: {log.name})",
    )
    run.check(
        f"{database}: rerunning schemachange applies nothing (idempotent)",
        second.exit_code == 0 and second.applied == 0,
        f"{second.applied} applied",
    )
    history = session.fetch_df(
        f"SELECT VERSION, SCRIPT, SCRIPT_TYPE, STATUS, CHECKSUM FROM {database}.SCHEMACHANGE.CHANGE_HISTORY ORDER BY INSTALLED_ON"
    )
    versions = [v for v in history["VERSION"] if v]
    run.check(
        f"{database}: versions recorded in ascending order",
        versions == sorted(versions, key=lambda v: [int(x) for x in v.split(".")]),
        " → ".join(versions),
    )
    if database == SNOWFLAKE_DATABASES["staging"]:
        history["CHECKSUM"] = history["CHECKSUM"].str[:12]
        run.table(history, title=f"{database}.SCHEMACHANGE.CHANGE_HISTORY")
        run.figure(
            "schemachange deploy, first apply",
            first.seconds,
            "s",
            how="wall time of one in-process `schemachange deploy`",
        )


def served_schema_matches_contracts(run: PatternRun, session: SnowflakeSession, database: str) -> None:
    """The Snowflake tables that serve gold carry every contract column (cross-system contract)."""
    from expert.release import load_contracts

    contracts = load_contracts(CONTRACTS_DIR)
    served = {GOLD_DAILY_SALES: "DAILY_SALES", GOLD_DAILY_FUNNEL: "DAILY_FUNNEL"}
    for table, snowflake_table in served.items():
        columns = {
            r["COLUMN_NAME"].lower()
            for r in session.fetch(
                f"SELECT COLUMN_NAME FROM {database}.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'GOLD' AND TABLE_NAME = %s",
                (snowflake_table,),
            )
        }
        missing = [c.name for c in contracts[table].columns if c.name not in columns]
        run.check(
            f"GOLD.{snowflake_table} has every column of the {table} contract",
            not missing,
            f"missing {missing}" if missing else f"{len(columns)} columns",
        )


# ---------------------------------------------------------------------------------- the unit-test gate


@dataclass(frozen=True)
class GateResult:
    exit_code: int
    passed: int
    failed: int
    seconds: float
    summary: str


def start_unit_gate(workdir: Path) -> tuple[subprocess.Popen[str], float]:
    """Start the gate's pytest selection in a fresh interpreter, exactly as CI's test job runs it.

    It runs while the definitions are validated; nothing is deployed until it has passed.
    """
    env = {**os.environ, "EXPERT_WORK_ROOT": str(workdir / "gate")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GATE_TESTS],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, time.perf_counter()


def finish_unit_gate(process: subprocess.Popen[str], started: float) -> GateResult:
    """Wait for the gate and read pytest's closing line."""
    stdout, _ = process.communicate(timeout=300)
    seconds = time.perf_counter() - started
    lines = stdout.splitlines()
    summary = next((line for line in reversed(lines) if " passed" in line or " failed" in line), stdout.strip()[-200:])
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|error)", summary)}
    return GateResult(
        process.returncode,
        counts.get("passed", 0),
        counts.get("failed", 0) + counts.get("error", 0),
        seconds,
        summary.strip("= "),
    )


# ---------------------------------------------------------------------------------- releases


@dataclass(frozen=True)
class Release:
    """A version of the pipeline's gold definitions, and what it changes."""

    version: str
    change: str
    specs: tuple[GoldSpec, ...]


def _with_spec(table: str, **changes: Any) -> tuple[GoldSpec, ...]:
    return tuple(dataclasses.replace(spec, **changes) if spec.table == table else spec for spec in GOLD_SPECS)


def releases() -> tuple[Release, ...]:
    """The three releases the pattern promotes: good, subtly wrong, and contract-breaking."""
    sales = next(s for s in GOLD_SPECS if s.table == GOLD_DAILY_SALES)
    double_counted = {**sales.measures, "revenue": "CAST(round(sum(amount * quantity), 2) AS DECIMAL(18, 2))"}
    by_status = ("order_date", "status")
    return (
        Release("1.0.0", "the medallion pipeline of databricks/01", GOLD_SPECS),
        Release(
            "1.1.0",
            "revenue 'from order lines': sum(amount * quantity), but amount already includes quantity",
            _with_spec(GOLD_DAILY_SALES, measures=double_counted),
        ),
        Release(
            "1.2.0",
            "daily sales split by order status: changes the table's grain and schema",
            _with_spec(
                GOLD_DAILY_SALES,
                keys=by_status,
                schema=sales.schema.replace("order_date DATE,", "order_date DATE, status STRING,"),
            ),
        ),
    )


@dataclass
class ReleaseOutcome:
    release: Release
    audit_passed: bool
    published: bool = False
    verification: str = "-"
    decision: str = "-"
    live_versions: dict[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Environments:
    staging: MedallionLayout
    live_root: Path
    release_log: str

    def staged(self, release: str, table: str) -> str:
        return self.staging.location("releases", release, table)

    def live(self, table: str) -> str:
        return str(self.live_root / table)


def deploy_to_staging(
    run: PatternRun, resolved: Mapping[str, TargetJob], env: Mapping[str, str], session: SnowflakeSession
) -> tuple[Environments, Any]:
    """Deploy everything a release needs, then run the whole pipeline in the staging environment."""
    from expert.lakehouse import land_raw, run_medallion
    from expert.runtime.data import EcommerceWorld

    run.step("Deploy to staging: infrastructure, the job, the Snowflake schema, one pipeline run")
    apply_infrastructure(run)
    deploy_job_to_target(run, resolved)
    snowflake_migrations(run, env, session, SNOWFLAKE_DATABASES["staging"])
    served_schema_matches_contracts(run, session, SNOWFLAKE_DATABASES["staging"])
    world = EcommerceWorld(run.rows, seed=run.seed)
    staging = MedallionLayout.local(run.workdir / "staging")
    land_raw(world, staging, batches=3)
    spark = run.spark
    started = time.perf_counter()
    result = run_medallion(spark, staging)
    seconds = time.perf_counter() - started
    run.table(
        [{"table": table, "rows ingested": rows} for table, rows in result.bronze.rows.items()],
        title="Bronze ingestion in staging (Structured Streaming, availableNow)",
    )
    run.figure(
        "staging pipeline run (bronze → silver → gold)",
        seconds,
        "s",
        how="wall time of run_medallion at this --rows",
        key=True,
    )
    environments = Environments(staging, run.workdir / "prod" / "live", str(run.workdir / "prod" / "_release_log"))
    return environments, world


def build_release(
    spark: SparkSession, env: Environments, release: Release, specs: Sequence[GoldSpec]
) -> dict[str, str]:
    """Write the release's gold tables into its own staging location (a full refresh from silver).

    A changed definition cannot be applied incrementally (the incremental flow only recomputes
    keys whose silver rows changed), so a release rebuilds its gold tables from scratch.
    """
    from expert.lakehouse import aggregate

    staged = {}
    for spec in specs:
        location = env.staged(release.version, spec.table)
        aggregate(spark, env.staging, spec).write.format("delta").mode("overwrite").option(
            "overwriteSchema", "true"
        ).save(location)
        staged[spec.table] = location
    return staged


def audit_release(
    run: PatternRun, env: Environments, release: Release, staged: Mapping[str, str]
) -> dict[str, AuditReport]:
    """Audit every staged table against its contract and show the findings."""
    from expert.release import audit_table, load_contracts

    contracts = load_contracts(CONTRACTS_DIR)
    reports = {
        table: audit_table(run.spark, location, contracts[table], now=CLOCK) for table, location in staged.items()
    }
    rows = [
        {
            "table": table,
            "check": f.check,
            "measured": f.measured[:48],
            "expected": f.expected[:48],
            "ok": "✓" if f.passed else "✗",
        }
        for table, report in reports.items()
        for f in report.findings
        if not f.passed or table == GOLD_DAILY_SALES
    ]
    run.table(
        rows,
        title=f"Contract audit of release {release.version} (all {GOLD_DAILY_SALES} checks, failures of the others)",
        max_rows=14,
    )
    return reports


def publish_and_verify(
    run: PatternRun, env: Environments, release: Release, specs: Sequence[GoldSpec], staged: Mapping[str, str]
) -> list[Verification]:
    """Publish every table of the release (blue → green), verify each, roll all back on any failure.

    `release_tables` is the same call the deployed job's publish task makes; the pattern adds the
    check that each RESTORE brought back its blue version exactly.
    """
    from expert.release import release_tables, rows_differ
    from expert.release.gold import DRIFT_TOLERANCE, gold_reconciliations
    from expert.release.publish import read_version, verify_publication

    checks = gold_reconciliations(env.staging)
    by_table = {spec.table: spec for spec in specs}

    def verify(publication: Publication) -> Verification:
        spec = by_table[publication.table]
        return verify_publication(
            run.spark,
            publication,
            checks[spec.table],
            spec.keys,
            list(spec.measures),
            drift_tolerance=DRIFT_TOLERANCE,
        )

    result = release_tables(
        run.spark,
        release.version,
        {s.table: staged[s.table] for s in specs},
        live=env.live,
        verify=verify,
        log_location=env.release_log,
    )
    for verification in result.verifications:
        p = verification.publication
        if p.table in result.restored:
            restored = result.restored[p.table]
            blue = read_version(run.spark, p.live, p.blue_version) if p.blue_version is not None else None
            now_live = read_version(run.spark, p.live, restored)
            same = rows_differ(now_live, blue) == 0 if blue is not None else now_live.count() == 0
            run.check(
                f"{p.table}: RESTORE brought back blue (v{p.blue_version}) exactly",
                same,
                f"v{p.green_version} → RESTORE → v{restored}",
            )
    return result.verifications


def expected_daily_sales(world: Any) -> dict[str, tuple[int, float]]:
    """Ground truth from the generator, independent of Spark: orders and revenue per day.

    What silver must hold: every delivered order with a key, once (redeliveries are exact copies).
    """
    delivered, _ = world.deliver("orders", "order_id")
    kept = delivered.dropna(subset=["order_id"]).drop_duplicates(subset=["order_id"])
    days = kept["order_ts"].dt.strftime("%Y-%m-%d")
    grouped = kept.groupby(days).agg(orders=("order_id", "size"), revenue=("amount", "sum"))
    return {day: (int(row.orders), float(row.revenue)) for day, row in grouped.iterrows()}


def live_matches_ground_truth(
    spark: SparkSession, env: Environments, truth: Mapping[str, tuple[int, float]]
) -> tuple[bool, str]:
    rows = spark.read.format("delta").load(env.live(GOLD_DAILY_SALES)).collect()
    live = {r["order_date"].isoformat(): (int(r["orders"]), float(r["revenue"])) for r in rows}
    same_days = set(live) == set(truth)
    orders_ok = all(live[d][0] == truth[d][0] for d in truth if d in live)
    worst = max((abs(live[d][1] - truth[d][1]) for d in truth if d in live), default=float("inf"))
    return same_days and orders_ok and worst <= 0.011, f"{len(live)} days, orders exact, worst revenue gap {worst:.4f}"


def promote(
    run: PatternRun,
    env: Environments,
    release: Release,
    ground_truth: Mapping[str, tuple[int, float]],
    live_specs: dict[str, GoldSpec],
) -> ReleaseOutcome:
    """One release through staging build → audit → publish → verify → keep or roll back.

    Only the tables whose definition differs from the live one are rebuilt and published
    (`live_specs` is updated when the release is kept).
    """
    from expert.release import live_version

    run.step(f"Release {release.version}: {release.change}")
    changed = [spec for spec in release.specs if live_specs.get(spec.table) != spec]
    run.say(f"changes {', '.join(s.table for s in changed)}: rebuilt from staging silver and audited")
    before = {spec.table: live_version(run.spark, env.live(spec.table)) for spec in GOLD_SPECS}
    staged = build_release(run.spark, env, release, changed)
    reports = audit_release(run, env, release, staged)
    outcome = ReleaseOutcome(release, all(r.passed for r in reports.values()))
    if not outcome.audit_passed:
        failed = [f"{t}: {f.check}" for t, r in reports.items() for f in r.failures]
        outcome.decision = "blocked at staging"
        outcome.live_versions = {t: live_version(run.spark, env.live(t)) for t in before}
        run.check(
            f"{release.version} is blocked: the contract audit failed, nothing was published",
            outcome.live_versions == before,
            "; ".join(failed[:3]),
        )
        return outcome
    verifications = publish_and_verify(run, env, release, changed, staged)
    outcome.published = True
    outcome.live_versions = {t: live_version(run.spark, env.live(t)) for t in before}
    failures = [f"{v.publication.table}: {r}" for v in verifications for r in v.failures]
    rows = []
    for v in verifications:
        for r in v.reconciliations:
            rows.append(
                {
                    "table": v.publication.table,
                    "check": r.name,
                    "live": f"{r.gold:,.2f}",
                    "ledger": f"{r.ledger:,.2f}",
                    "ok": "✓" if r.passed else "✗",
                }
            )
        if v.drift is not None:
            rows.append(
                {
                    "table": v.publication.table,
                    "check": f"drift vs blue (max {v.drift.tolerance:.1%})",
                    "live": f"{v.drift.worst_relative_change:.2%} ({v.drift.worst_measure})",
                    "ledger": f"{v.drift.common_keys} keys",
                    "ok": "✓" if v.drift.passed else "✗",
                }
            )
        rows.append(
            {
                "table": v.publication.table,
                "check": "live rows = audited build",
                "live": f"{v.rows_differing_from_build} differ",
                "ledger": "0",
                "ok": "✓" if not v.rows_differing_from_build else "✗",
            }
        )
    run.table(rows, title=f"Verification of release {release.version} in production (after the swap)", max_rows=12)
    failed_checks = [r.name.split(" ")[0] for v in verifications for r in v.reconciliations if not r.passed]
    failed_checks += ["drift" for v in verifications if v.drift is not None and not v.drift.passed]
    failed_checks += ["content" for v in verifications if v.rows_differing_from_build]
    outcome.verification = "passed" if not failures else "failed: " + ", ".join(failed_checks)
    if failures:
        outcome.decision = "rolled back (RESTORE)"
        run.check(
            f"{release.version} was rolled back automatically: production is the previous release again",
            True,
            failures[0],
        )
    else:
        outcome.decision = "kept (live)"
        live_specs.update({spec.table: spec for spec in changed})
        matches, detail = live_matches_ground_truth(run.spark, env, ground_truth)
        run.check(f"{release.version} is live and equals the generator's ground truth", matches, detail)
    return outcome


def redeploy_is_idempotent(run: PatternRun, env: Environments, release: Release) -> None:
    """Promoting the release that is already live writes nothing: the log and the versions say so."""
    from expert.release import Decision, live_release, live_version, read_release_log, record_decision

    records = read_release_log(run.spark, env.release_log)
    unchanged = []
    for spec in release.specs:
        current = live_version(run.spark, env.live(spec.table))
        live = live_release(records, spec.table)
        last = [r for r in records if r.table == spec.table][-1:]
        if live is not None and live.release == release.version and last and last[0].live_version == current:
            record_decision(
                run.spark,
                env.release_log,
                release=release.version,
                table=spec.table,
                staged=live.staged,
                blue_version=current,
                green_version=None,
                live_version_now=current,
                decision=Decision.ALREADY_LIVE,
                reason="the live version already holds this release",
            )
            unchanged.append(live_version(run.spark, env.live(spec.table)) == current)
    run.check(
        f"deploying {release.version} again (it is live) writes nothing",
        len(unchanged) == len(release.specs) and all(unchanged),
        f"{len(unchanged)} table(s) already live, versions unchanged",
    )


def history_table(spark: SparkSession, location: str) -> list[dict[str, Any]]:
    rows = sorted(history(spark, location, None), key=lambda commit: commit["version"])
    return [
        {
            "version": r["version"],
            "operation": r["operation"],
            "restored to": (r["operationParameters"] or {}).get("version", ""),
        }
        for r in rows
    ]


# ---------------------------------------------------------------------------------- serving + workflow


def serve_live_gold(run: PatternRun, env: Environments, sf_env: Mapping[str, str], session: SnowflakeSession) -> None:
    """Migrate the production schema, then load the live release into it, tagged with its version."""
    from expert.release import live_release, live_version, read_release_log

    run.step("Deploy to production in Snowflake: migrate the schema, then serve exactly the live release")
    snowflake_migrations(run, sf_env, session, SNOWFLAKE_DATABASES["prod"])
    served_schema_matches_contracts(run, session, SNOWFLAKE_DATABASES["prod"])
    location = env.live(GOLD_DAILY_SALES)
    version = live_version(run.spark, location)
    release = live_release(read_release_log(run.spark, env.release_log), GOLD_DAILY_SALES)
    assert version is not None and release is not None
    frame = run.spark.read.format("delta").option("versionAsOf", version).load(location).toPandas()
    table = f"{SNOWFLAKE_DATABASES['prod']}.GOLD.DAILY_SALES"
    session.execute(f"DELETE FROM {table}")
    rows = [
        (
            r.order_date.isoformat(),
            int(r.orders),
            int(r.units),
            float(r.revenue),
            int(r.customers),
            int(r.returned_orders),
            release.release,
            version,
        )
        for r in frame.itertuples()
    ]
    session.connection.cursor().executemany(
        f"INSERT INTO {table} (ORDER_DATE, ORDERS, UNITS, REVENUE, CUSTOMERS, RETURNED_ORDERS, RELEASE, DELTA_VERSION) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        rows,
    )
    served = session.fetch(
        f"SELECT COUNT(*) AS N, SUM(REVENUE) AS REVENUE, MIN(RELEASE) AS LO, MAX(RELEASE) AS HI FROM {table}"
    )[0]
    revenue = float(frame["revenue"].astype(float).sum())
    run.check(
        "Snowflake serves the live Delta version: same rows, same revenue, one release",
        int(served["N"]) == len(frame)
        and abs(float(served["REVENUE"]) - revenue) < 0.01
        and served["LO"] == served["HI"] == release.release,
        f"{served['N']} rows, revenue {float(served['REVENUE']):,.2f}, release {served['HI']} (Delta v{version})",
    )
    monthly = session.fetch_df(
        f"SELECT MONTH, ORDERS, REVENUE FROM {SNOWFLAKE_DATABASES['prod']}.GOLD.MONTHLY_REVENUE ORDER BY MONTH"
    )
    run.table(monthly, title="GOLD.MONTHLY_REVENUE (the repeatable migration's view)")


def workflow_problems(document: Mapping[str, Any]) -> list[str]:
    """The promotion order, environments, permissions, pinning and secrets the workflow must keep."""
    jobs = document.get("jobs") or {}
    problems = []
    order = ["test", "deploy-staging", "verify-staging", "deploy-production"]
    for previous, job in itertools.pairwise(order):
        needs = (jobs.get(job) or {}).get("needs")
        needs = [needs] if isinstance(needs, str) else list(needs or ())
        if previous not in needs:
            problems.append(f"{job} must need {previous}")
    for job, environment in (
        ("deploy-staging", "staging"),
        ("verify-staging", "staging"),
        ("deploy-production", "production"),
    ):
        declared = (jobs.get(job) or {}).get("environment")
        name = declared.get("name") if isinstance(declared, Mapping) else declared
        if name != environment:
            problems.append(f"{job} must run in the protected environment {environment!r}")
    if (document.get("permissions") or {}) != {"contents": "read"}:
        problems.append("top-level permissions must be exactly contents: read")
    for name, job in jobs.items():
        for step in job.get("steps", ()):
            uses = step.get("uses")
            if uses and not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses):
                problems.append(f"{name}: {uses} is not pinned to a full commit SHA")
    text = WORKFLOW_FILE.read_text()
    for match in re.finditer(
        r"(?i)^\s*(\w*(password|secret|token|private_key)\w*)\s*:\s*(?!\$\{\{\s*secrets\.)(\S+)", text, re.MULTILINE
    ):
        problems.append(f"{match.group(1)} is set from {match.group(3)!r}, not from ${{{{ secrets.* }}}}")
    return problems


def actionlint_binary() -> str | None:
    local = PROJECT_ROOT / ".cache" / "bin" / "actionlint"
    return shutil.which("actionlint") or (str(local) if local.is_file() else None)


def deployment_workflow(run: PatternRun) -> None:
    """Check the repository's own deploy workflow: structure here, everything else with actionlint."""
    run.step("The deployment workflow: test → staging → verify → production, linted")
    document = yaml.safe_load(WORKFLOW_FILE.read_text())
    problems = workflow_problems(document)
    jobs = document.get("jobs") or {}
    run.table(
        [
            {
                "job": name,
                "needs": ", ".join([job.get("needs")] if isinstance(job.get("needs"), str) else job.get("needs") or ())
                or "-",
                "environment": (job.get("environment") or {}).get("name", "-")
                if isinstance(job.get("environment"), Mapping)
                else job.get("environment", "-"),
                "steps": len(job.get("steps", ())),
            }
            for name, job in jobs.items()
        ],
        title=f"{WORKFLOW_FILE.relative_to(PROJECT_ROOT)}",
    )
    run.check(
        "workflow: promotion order, protected environments, read-only token, pinned actions, secrets only from secrets",
        not problems,
        "; ".join(problems) or f"{len(jobs)} jobs",
    )
    binary = actionlint_binary()
    if binary:
        result = subprocess.run(
            [binary, "-no-color", str(WORKFLOW_FILE)], capture_output=True, text=True, timeout=60, check=False
        )
        run.check(
            "actionlint finds nothing in deploy.yml",
            result.returncode == 0,
            result.stdout.strip().splitlines()[0] if result.stdout.strip() else "clean",
        )
    else:
        run.note("actionlint is not installed (`make tools`): the workflow's expressions and shell are not linted here")
    run.cloud_only_step(
        "github",
        "gh api -X PUT repos/{owner}/{repo}/environments/production -f 'reviewers[][type]=Team' ... (required reviewers, main branch only)",
        "environment protection rules are repository settings on GitHub, not part of the workflow file",
    )


# ---------------------------------------------------------------------------------- the pattern


def body(run: PatternRun) -> None:
    gate = start_unit_gate(run.workdir)
    resolved = jobs_as_code(run)
    infrastructure_as_code(run)

    run.step("Gate: the unit tests must pass before anything is deployed")
    result = finish_unit_gate(*gate)
    run.check(
        "unit-test gate passed: every selected test ran and passed",
        result.exit_code == 0 and result.passed == len(GATE_TESTS) and result.failed == 0,
        result.summary,
    )
    run.figure("unit-test gate", result.seconds, "s", how="pytest in a fresh interpreter, as CI runs it")

    with snowflake_target(run) as (env, session):
        environments, world = deploy_to_staging(run, resolved, env, session)
        truth = expected_daily_sales(world)
        live_specs: dict[str, GoldSpec] = {}
        outcomes = [promote(run, environments, release, truth, live_specs) for release in releases()]
        redeploy_is_idempotent(run, environments, outcomes[0].release)
        summarize_releases(run, environments, outcomes)
        serve_live_gold(run, environments, env, session)
    deployment_workflow(run)


def summarize_releases(run: PatternRun, environments: Environments, outcomes: Sequence[ReleaseOutcome]) -> None:
    """Every promotion decision, and the production table's history that records them."""
    run.step("Promotion decisions and the production table's history")
    run.table(
        [
            {
                "release": o.release.version,
                "contract audit": "passed" if o.audit_passed else "failed",
                "published": "yes" if o.published else "no",
                "verification": o.verification,
                "decision": o.decision,
                "live version after": o.live_versions.get(GOLD_DAILY_SALES),
            }
            for o in outcomes
        ],
        title="Releases",
    )
    run.table(
        history_table(run.spark, environments.live(GOLD_DAILY_SALES)),
        title=f"DESCRIBE HISTORY {GOLD_DAILY_SALES} (production)",
    )
    decisions = [o.decision for o in outcomes]
    run.check(
        "good release kept, subtle bug rolled back, contract breach blocked",
        decisions == ["kept (live)", "rolled back (RESTORE)", "blocked at staging"],
        " / ".join(decisions),
    )
    run.figure(
        "releases kept / rolled back / blocked",
        f"{decisions.count('kept (live)')} / {decisions.count('rolled back (RESTORE)')} / {decisions.count('blocked at staging')}",
        key=True,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default="dev",
        help="bundle target the job is deployed to in cloud mode (default dev)",
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        type=_key_value,
        metavar="NAME=VALUE",
        help="bundle variable for deployment, e.g. deployer_application_id=...",
    )
    parser.add_argument(
        "--write-bundle",
        action="store_true",
        help=f"regenerate {JOB_RESOURCE_FILE.relative_to(PROJECT_ROOT)} from the typed job",
    )
    parser.add_argument(
        "--apply-infra", action="store_true", help="in cloud mode, run terraform init + apply for both stacks"
    )


def _key_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=5_000, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
