"""datacontract-cli, the ODCS tooling practitioners run, called from its own tool environment.

Why a subprocess and not an import: datacontract-cli pins dependencies this project's stack does
not share, so `scripts/install-datacontract.sh` (run by `make tools`) installs it in its own
virtualenv under `.cache/tools/datacontract/`. This module finds that executable (or one on PATH,
or `DATACONTRACT_CLI`), runs `datacontract lint` and `datacontract breaking`, and reads their
verdicts: the exit code, and the changes `breaking` lists with their severity.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from expert import PROJECT_ROOT

VERSION = "1.2.8"
"""The datacontract-cli release scripts/install-datacontract.sh installs (it checks ODCS v3.2.0)."""
INSTALL = "scripts/install-datacontract.sh"
_CHANGE = re.compile(r"^│\s*(ERROR|WARNING|INFO)\s*│\s*(\w+)\s*│\s*(\S+)\s*│$")


def find_cli() -> Path | None:
    """`DATACONTRACT_CLI`, else the tool environment `make tools` builds, else `datacontract` on PATH."""
    configured = os.environ.get("DATACONTRACT_CLI")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    cache = Path(os.environ.get("EXPERT_CACHE_DIR") or PROJECT_ROOT / ".cache")
    for candidate in (
        cache / "tools" / "datacontract" / "bin" / "datacontract",
        PROJECT_ROOT / ".cache" / "tools" / "datacontract" / "bin" / "datacontract",
    ):
        if candidate.is_file():
            return candidate
    found = shutil.which("datacontract")
    return Path(found) if found else None


@dataclass(frozen=True)
class CliResult:
    """One run of the CLI: the command, its exit code and its output."""

    command: tuple[str, ...]
    returncode: int
    output: str

    @property
    def passed(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class Change:
    """One change `datacontract breaking` reports, as its summary table lists it."""

    severity: str
    kind: str
    field: str


def run(cli: Path, *args: str, timeout: float = 300) -> CliResult:
    """Run `datacontract <args>` with a wide terminal (its tables are not cut) and no colour."""
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=timeout, check=False, env=env)
    return CliResult((str(cli), *args), done.returncode, done.stdout + done.stderr)


def lint(cli: Path, contract: Path) -> CliResult:
    """`datacontract lint <contract>`: the contract against the ODCS schema; exit code 0 when valid."""
    return run(cli, "lint", str(contract))


def breaking(cli: Path, old: Path, new: Path) -> tuple[CliResult, list[Change]]:
    """`datacontract breaking <old> <new>` and the changes of its summary table (exit code 1 when breaking)."""
    result = run(cli, "breaking", str(old), str(new))
    summary = result.output.split("Details", 1)[0]
    changes = [Change(*m.groups()) for line in summary.splitlines() if (m := _CHANGE.match(line.strip()))]
    return result, changes
