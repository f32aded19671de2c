"""Terraform stacks read without Terraform: parsed with python-hcl2 and checked for what review needs.

Why: `terraform validate` needs the providers downloaded and `plan` needs credentials and remote
state, so a CI gate that must run anywhere checks what it can from the files: providers pinned
to a source and a version, every variable declared and used, secrets marked sensitive and never
given a default or a literal value.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VAR_REFERENCE = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)")
SECRET_NAME = re.compile(r"(password|secret|token|private_key)", re.IGNORECASE)


def terraform_binary(cache_bin: Path) -> str | None:
    """`terraform` (or OpenTofu's `tofu`) on PATH, else one in the project's tool cache, else None."""
    found = shutil.which("terraform") or shutil.which("tofu")
    local = cache_bin / "terraform"
    return found or (str(local) if local.is_file() else None)


def parse_terraform(directory: Path) -> dict[str, Any]:
    """Every .tf file of one stack parsed with python-hcl2, merged per block type.

    Plain values (quotes stripped, no comment or block markers); an expression stays as its
    `${...}` text.
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


def providers(tf: Mapping[str, Any]) -> list[str]:
    """`name: source version` of every required provider of a parsed stack."""
    return sorted(
        {
            f"{name}: {spec['source']} {spec['version']}"
            for block in tf.get("terraform", ())
            for entry in block.get("required_providers", ())
            for name, spec in entry.items()
        }
    )


def resources(tf: Mapping[str, Any]) -> list[str]:
    """`type.name` of every resource of a parsed stack."""
    return [f"{kind}.{name}" for block in tf.get("resource", ()) for kind, named in block.items() for name in named]


def terraform_problems(directory: Path) -> list[str]:
    """What `terraform validate` cannot tell without provider downloads, checked from the parse."""
    tf = parse_terraform(directory)
    problems = []
    required = [p for block in tf.get("terraform", ()) for p in block.get("required_providers", ())]
    for entry in required:
        for name, spec in entry.items():
            if not isinstance(spec, Mapping) or not spec.get("source") or not spec.get("version"):
                problems.append(f"provider {name} needs a source and a version constraint")
    if not required:
        problems.append("no required_providers block")
    declared: dict[str, Mapping[str, Any]] = {}
    for block in tf.get("variable", ()):
        declared.update(block)
    text = "\n".join(p.read_text() for p in sorted(directory.glob("*.tf")))
    used = set(VAR_REFERENCE.findall(text))
    problems += [f"var.{v} is used but not declared" for v in sorted(used - set(declared))]
    problems += [f"variable {v} is declared but never used" for v in sorted(set(declared) - used)]
    for name, spec in declared.items():
        if SECRET_NAME.search(name) and (not spec.get("sensitive") or "default" in spec):
            problems.append(f"variable {name} looks secret: it must be sensitive and have no default")
    for match in re.finditer(r'(password|private_key|token|client_secret)\s*=\s*"[^"$]', text):
        problems.append(f"a literal credential is assigned: {match.group(0)}")
    return problems


def resource_attribute(tf: Mapping[str, Any], kind: str, attribute: str) -> list[Any]:
    """`attribute` of every resource of type `kind` (e.g. the names of the cluster policies)."""
    return [r[attribute] for block in tf.get("resource", ()) for r in block.get(kind, {}).values()]


def local_value(tf: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A map declared in the stack's `locals` blocks (merged over the blocks that define it)."""
    return {k: v for block in tf.get("locals", ()) for k, v in block.get(name, {}).items()}


def apply_commands(stack: Path, root: Path) -> str:
    """The `terraform init` + `apply` of one stack as the deploy workflow runs them (state in a bucket)."""
    where = stack.relative_to(root)
    return (
        f"terraform -chdir={where} init -input=false \\\n"
        f'  -backend-config="bucket=$STATE_BUCKET" -backend-config="region=$STATE_REGION" \\\n'
        f'  -backend-config="key=lakehouse/{stack.name}.tfstate"\n'
        f"terraform -chdir={where} apply -input=false -auto-approve"
    )


def apply_stack(binary: str, stack: Path) -> list[tuple[str, int]]:
    """Run `terraform init` then `apply` in a stack (backend settings from the environment); exit code of each."""
    results = []
    for args in (["init", "-input=false"], ["apply", "-input=false", "-auto-approve"]):
        done = subprocess.run([binary, f"-chdir={stack}", *args], timeout=1800, check=False)
        results.append((args[0], done.returncode))
        if done.returncode:
            break
    return results


def fmt_check(binary: str, directory: Path) -> tuple[bool, str, str]:
    """`terraform fmt -check -recursive`: whether it is clean, the Terraform version, and the diff."""
    fmt = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    version = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30, check=False)
    return fmt.returncode == 0, version.stdout.splitlines()[0], fmt.stdout.strip()


@dataclass(frozen=True)
class StackReport:
    """One Terraform stack (a directory of .tf files): its parse and the problems found in it."""

    name: str
    parsed: dict[str, Any]
    problems: list[str]

    def row(self) -> dict[str, Any]:
        """Providers, resource and variable counts, problems found."""
        return {
            "stack": self.name,
            "providers": "; ".join(providers(self.parsed)),
            "resources": len(resources(self.parsed)),
            "variables": sum(len(b) for b in self.parsed.get("variable", ())),
            "problems": len(self.problems),
        }


def check_stacks(directory: Path) -> dict[str, StackReport]:
    """Every stack under `directory` (one per subdirectory), parsed and checked."""
    return {
        stack.name: StackReport(stack.name, parse_terraform(stack), terraform_problems(stack))
        for stack in sorted(p for p in directory.iterdir() if p.is_dir())
    }
