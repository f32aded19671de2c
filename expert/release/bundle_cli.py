"""The Databricks CLI's bundle commands: how a job defined as an Asset Bundle is deployed.

Why one deployment path: the deploy workflow runs `databricks bundle validate -t <target>` and then
`databricks bundle deploy -t <target>` in deploy/databricks; a local rehearsal that created the job
through the SDK instead would leave a job outside the bundle's deployment state, which the next
`bundle deploy` would not know about. So cloud mode runs the same two commands, and a local run
shows them as its cloud plan.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from expert.runtime.config import ServiceConfig
from expert.runtime.errors import ExpertError

INSTALL_FIX = (
    "install the Databricks CLI (v0.218 or newer: https://docs.databricks.com/aws/en/dev-tools/cli/install), "
    "or remove DATABRICKS_HOST from .env to run locally"
)


def commands(target: str, variables: Sequence[tuple[str, str]]) -> list[list[str]]:
    """`bundle validate` then `bundle deploy` for `target`, with the deploy-time `--var` values."""
    extra = [f"--var={name}={value}" for name, value in variables]
    return [["databricks", "bundle", verb, "-t", target, *extra] for verb in ("validate", "deploy")]


def as_script(steps: Sequence[Sequence[str]], bundle_dir: Path, root: Path) -> str:
    """The commands as the shell lines the deploy workflow runs, from the repository root."""
    return "\n".join([f"cd {bundle_dir.relative_to(root)}", *(shlex.join(step) for step in steps)])


def cli() -> str:
    """The `databricks` CLI with bundle support, or an ExpertError saying what to install."""
    binary = shutil.which("databricks")
    if binary is None:
        raise ExpertError(
            "the Databricks CLI (`databricks`) is not on PATH: cloud mode deploys the bundle with it", INSTALL_FIX
        )
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    if not re.search(r"v0\.(2\d\d|[3-9]\d\d)|v[1-9]", version.stdout):
        raise ExpertError(
            f"{binary} is not a Databricks CLI with bundles ({version.stdout.strip() or version.stderr.strip()}): "
            "the legacy `databricks-cli` Python package has no `bundle` command",
            INSTALL_FIX,
        )
    return binary


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int
    output: str


def run(steps: Sequence[Sequence[str]], bundle_dir: Path, workspace: ServiceConfig) -> list[CommandResult]:
    """Run the commands in `bundle_dir` with the workspace's credentials in the environment; stop at a failure."""
    binary = cli()
    env = {**os.environ, "DATABRICKS_HOST": workspace.get("DATABRICKS_HOST") or ""}
    for key in ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"):
        if key in workspace.spec.secrets:
            secret = workspace.secret(key)
            value = secret.get_secret_value() if secret is not None else None
        else:
            value = workspace.get(key)
        if value:
            env[key] = value
    results = []
    for step in steps:
        done = subprocess.run(
            [binary, *step[1:]], cwd=bundle_dir, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        results.append(CommandResult(shlex.join(step), done.returncode, (done.stdout + done.stderr).strip()[-400:]))
        if done.returncode:
            break
    return results
