"""Databricks Asset Bundles as the CLI resolves them: includes, target overrides, `${...}` references.

Why: `databricks bundle validate` needs a workspace to log in to, and the SDK's `from_dict`
silently drops keys it does not know, so a misspelled setting deploys as a job without it. This
module merges a bundle's files and a target's overrides the way the bundle CLI does (keyed lists
merged element by element), resolves the references a deployment supplies, and lists every reason
a target's job must not be deployed: unknown keys, the cluster policy, the task graph, the
schedule and who the job runs as. It runs offline, in the unit-test gate.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from expert.release.policy import policy_violations
from expert.release.schedule import quartz_cron_problems

KEYED_LISTS = {"tasks": "task_key", "job_clusters": "job_cluster_key"}
"""Lists a target override merges element by element (by key), as the bundle CLI does."""
REFERENCE = re.compile(r"\$\{([a-zA-Z0-9_.]+)\}")


def load_bundle(bundle_file: Path) -> dict[str, Any]:
    """databricks.yml with its included resource files merged in (the bundle's own include rule)."""
    bundle = yaml.safe_load(bundle_file.read_text())
    for pattern in bundle.get("include", ()):
        for path in sorted(bundle_file.parent.glob(pattern)):
            included = yaml.safe_load(path.read_text()) or {}
            deep_merge(bundle, included)
    return bundle


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `override` into `base` in place: mappings recursively, keyed lists by key, the rest replaced."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        elif key in KEYED_LISTS and isinstance(value, list) and isinstance(base.get(key), list):
            by_key = {item[KEYED_LISTS[key]]: item for item in base[key]}
            for item in value:
                if item[KEYED_LISTS[key]] in by_key:
                    deep_merge(by_key[item[KEYED_LISTS[key]]], item)
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


def resolve_target(
    bundle: Mapping[str, Any],
    target: str,
    context: Mapping[str, str],
    *,
    job_key: str,
    resource_dir: Path,
    sync_root: Path,
) -> TargetJob:
    """Merge a target's overrides into the job and resolve `${...}` references, like the bundle CLI.

    `context` supplies what only a deployment knows (current user, git commit, --var values).
    Relative task files (relative to `resource_dir`) become workspace paths under the synced
    `sync_root`.
    """
    spec = bundle["targets"][target] or {}
    job = deep_merge(
        copy.deepcopy(bundle["resources"]["jobs"][job_key]),
        (spec.get("resources") or {}).get("jobs", {}).get(job_key, {}),
    )
    mode = spec.get("mode", "")
    user = context["workspace.current_user.userName"]
    root_path = (spec.get("workspace") or {}).get(
        "root_path"
    ) or f"/Workspace/Users/{user}/.bundle/${{bundle.name}}/${{bundle.target}}"
    values: dict[str, str] = {"bundle.name": bundle["bundle"]["name"], "bundle.target": target, **context}
    for name, declared in (bundle.get("variables") or {}).items():
        chosen = (spec.get("variables") or {}).get(name, declared.get("default"))
        if chosen is None and "lookup" in declared:
            kind, lookup_name = next(iter(declared["lookup"].items()))
            chosen = context.get(f"lookup.{kind}.{lookup_name}", f"<{kind} id of {lookup_name!r}>")
        if chosen is None:
            chosen = context.get(f"var.{name}")
        if chosen is not None:
            values[f"var.{name}"] = str(chosen)
    values["workspace.root_path"] = substitute(root_path, values, [])
    values["workspace.file_path"] = values["workspace.root_path"] + "/files"
    unresolved: list[str] = []
    if mode == "development":
        job["name"] = f"[dev {user.split('@')[0]}] {job['name']}"
        job.setdefault("schedule", {})["pause_status"] = "PAUSED"
    for task in job.get("tasks", ()):
        python_task = task.get("spark_python_task")
        if python_task and not python_task["python_file"].startswith(("/", "${")):
            local = (resource_dir / python_task["python_file"]).resolve()
            python_task["python_file"] = f"${{workspace.file_path}}/{local.relative_to(sync_root).as_posix()}"
    settings = resolve_all(job, values, unresolved)
    return TargetJob(
        target,
        mode,
        settings,
        resolve_all(spec.get("run_as") or {}, values, unresolved),
        values["workspace.root_path"],
        list(spec.get("permissions") or ()),
        sorted(set(unresolved)),
    )


def substitute(text: str, values: Mapping[str, str], unresolved: list[str]) -> str:
    """Replace `${name}` references (nested ones too); names without a value go to `unresolved`."""
    for _ in range(5):
        replaced = REFERENCE.sub(lambda m: values.get(m.group(1), m.group(0)), text)
        if replaced == text:
            break
        text = replaced
    unresolved.extend(m.group(1) for m in REFERENCE.finditer(text))
    return text


def resolve_all(value: Any, values: Mapping[str, str], unresolved: list[str]) -> Any:
    """`substitute` applied to every string of a nested settings document."""
    if isinstance(value, Mapping):
        return {k: resolve_all(v, values, unresolved) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_all(v, values, unresolved) for v in value]
    if isinstance(value, str):
        return substitute(value, values, unresolved)
    return value


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


def target_problems(job: TargetJob, policy: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every reason a target's job must not be deployed: unknown keys, policy, DAG, schedule, identity."""
    settings = job.settings
    problems = [f"unresolved reference ${{{r}}}" for r in job.unresolved]
    problems += round_trip_problems(settings)
    for cluster in settings.get("job_clusters", ()):
        problems += [f"{cluster['job_cluster_key']}: {p}" for p in policy_violations(cluster["new_cluster"], policy)]
    problems += dag_problems(settings)
    if settings.get("max_concurrent_runs") != 1:
        problems.append("max_concurrent_runs must be 1: two publishes must never race")
    return problems + schedule_and_identity_problems(job)


def dag_problems(settings: Mapping[str, Any]) -> list[str]:
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


def schedule_and_identity_problems(job: TargetJob) -> list[str]:
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


def git_commit(repository: Path) -> str:
    """The commit being deployed (what `${bundle.git.commit}` resolves to), or "unknown"."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repository,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def target_row(job: TargetJob, problems: list[str]) -> dict[str, Any]:
    """One target's resolved job as a table row: mode, name, identity, schedule, size, problems."""
    return {
        "target": job.target,
        "mode": job.mode,
        "job name": job.settings["name"],
        "runs as": job.run_as.get("service_principal_name", "the deploying user")[:13],
        "schedule": job.settings["schedule"]["pause_status"],
        "workers": job.settings["job_clusters"][0]["new_cluster"]["num_workers"],
        "problems": len(problems),
    }


def resolve_targets(
    bundle_file: Path, targets: Sequence[str], context: Mapping[str, str], *, job_key: str, sync_root: Path
) -> dict[str, TargetJob]:
    """Every target's job of the bundle, as `databricks bundle deploy -t <target>` would resolve it.

    Task files are relative to the job's resource file (under the bundle's `resources/`).
    """
    document = load_bundle(bundle_file)
    resource_dir = bundle_file.parent / "resources"
    return {
        target: resolve_target(
            document, target, context, job_key=job_key, resource_dir=resource_dir, sync_root=sync_root
        )
        for target in targets
    }


def rendered_file_matches(path: Path, rendered: str, *, write: bool) -> bool:
    """Whether the committed file is exactly `rendered` (after writing it, with `write`)."""
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
    return path.is_file() and path.read_text() == rendered


def variable_assignment(text: str) -> tuple[str, str]:
    """An argparse type for `--var NAME=VALUE`, the bundle CLI's way to set a variable at deploy time."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value
