"""The deployment workflow's promises, checked from its YAML: order, environments, token, pinning, secrets.

Why: actionlint proves a GitHub workflow is well formed, not that it deploys safely. These rules
are the release process itself: production only after staging was verified, each deploy job in
its protected environment, a read-only token, actions pinned to a full commit SHA, credentials
only from `secrets`.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PRODUCTION_PROTECTION = """\
gh api -X PUT repos/{owner}/{repo}/environments/production --input - <<'JSON'
{
  "wait_timer": 0,
  "prevent_self_review": true,
  "reviewers": [{"type": "Team", "id": <data-platform team id>}],
  "deployment_branch_policy": {"protected_branches": false, "custom_branch_policies": true}
}
JSON
gh api -X POST repos/{owner}/{repo}/environments/production/deployment-branch-policies -f name=main -f type=branch"""
"""The `production` environment's protection (a repository setting, not part of the workflow file):
a reviewer of the data-platform team, and deployments from main only."""
PROMOTION_ORDER = ("test", "deploy-staging", "verify-staging", "deploy-production")
ENVIRONMENTS = {"deploy-staging": "staging", "verify-staging": "staging", "deploy-production": "production"}


def needs_of(job: Mapping[str, Any]) -> list[str]:
    """A job's `needs`, as a list whether the file wrote a string or a list."""
    needs = job.get("needs")
    return [needs] if isinstance(needs, str) else list(needs or ())


def environment_of(job: Mapping[str, Any]) -> str | None:
    """A job's environment name, whether the file wrote a string or a mapping."""
    declared = job.get("environment")
    return declared.get("name") if isinstance(declared, Mapping) else declared


def workflow_problems(document: Mapping[str, Any], text: str) -> list[str]:
    """The promotion order, environments, permissions, pinning and secrets the workflow must keep.

    `document` is the parsed workflow, `text` its source (secrets are checked on the text).
    """
    jobs = document.get("jobs") or {}
    problems = []
    for previous, job in itertools.pairwise(PROMOTION_ORDER):
        if previous not in needs_of(jobs.get(job) or {}):
            problems.append(f"{job} must need {previous}")
    for job, environment in ENVIRONMENTS.items():
        if environment_of(jobs.get(job) or {}) != environment:
            problems.append(f"{job} must run in the protected environment {environment!r}")
    if (document.get("permissions") or {}) != {"contents": "read"}:
        problems.append("top-level permissions must be exactly contents: read")
    for name, job in jobs.items():
        for step in job.get("steps", ()):
            uses = step.get("uses")
            if uses and not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses):
                problems.append(f"{name}: {uses} is not pinned to a full commit SHA")
    for match in re.finditer(
        r"(?i)^\s*(\w*(password|secret|token|private_key)\w*)\s*:\s*(?!\$\{\{\s*secrets\.)(\S+)", text, re.MULTILINE
    ):
        problems.append(f"{match.group(1)} is set from {match.group(3)!r}, not from ${{{{ secrets.* }}}}")
    return problems


def actionlint_binary(cache_bin: Path) -> str | None:
    """`actionlint` on PATH, else the one `make tools` builds into the project's tool cache, else None."""
    local = cache_bin / "actionlint"
    return shutil.which("actionlint") or (str(local) if local.is_file() else None)


def job_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per workflow job: what it needs, its environment, how many steps it has."""
    return [
        {
            "job": name,
            "needs": ", ".join(needs_of(job)) or "-",
            "environment": environment_of(job) or "-",
            "steps": len(job.get("steps", ())),
        }
        for name, job in (document.get("jobs") or {}).items()
    ]


def actionlint(binary: str, workflow_file: Path) -> tuple[bool, str]:
    """Run actionlint on one workflow file: whether it is clean, and its first finding (or "clean")."""
    done = subprocess.run(
        [binary, "-no-color", str(workflow_file)], capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout.strip()
    return done.returncode == 0, output.splitlines()[0] if output else "clean"
