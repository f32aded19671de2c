"""The compliance report federated governance fills in: one result per policy per product.

Why a report and not a log line: governance is evaluated on every product, every time, and read by
the product owners it notifies. The report keeps every evaluation (pass, FAIL, n/a with its
detail), draws the policy × product matrix, and is written as JSON (for machines) and Markdown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PolicyResult:
    product: str
    policy: str
    status: str
    detail: str


@dataclass
class ComplianceReport:
    results: list[PolicyResult] = field(default_factory=list)

    def add(self, product: str, policy: str, passed: bool | None, detail: str) -> None:
        status = "n/a" if passed is None else "pass" if passed else "FAIL"
        self.results.append(PolicyResult(product, policy, status, detail))

    @property
    def violations(self) -> list[PolicyResult]:
        return [r for r in self.results if r.status == "FAIL"]

    def matrix(self) -> list[dict[str, str]]:
        """One row per policy, one column per product (by table name): ✓ pass, ✗ violation, – n/a."""
        marks = {"pass": "✓", "FAIL": "✗", "n/a": "–"}
        return [
            {
                "policy": policy,
                **{r.product.split(".")[-1]: marks[r.status] for r in self.results if r.policy == policy},
            }
            for policy in dict.fromkeys(r.policy for r in self.results)
        ]


def write_report(workdir: Path, report: ComplianceReport) -> None:
    """The compliance report as JSON (for machines) and Markdown (for the owners it notifies)."""
    (workdir / "compliance_report.json").write_text(json.dumps([r.__dict__ for r in report.results], indent=2))
    matrix = report.matrix()
    header = list(matrix[0]) if matrix else ["policy"]
    lines = ["# Compliance report", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row.values()) + " |" for row in matrix]
    lines += ["", "## Violations", ""] + [f"- **{v.product}** · {v.policy}: {v.detail}" for v in report.violations]
    (workdir / "compliance_report.md").write_text("\n".join(lines) + "\n")
