"""Prometheus' own checker, `promtool`: rule and exposition lint, and alert rules replayed as a unit test.

Why: the in-process alert evaluator of `monitoring.py` is only trustworthy if Prometheus' rule
engine agrees with it. `rules_unit_test` writes a `promtool test rules` file whose input is every
series the pattern scraped, one value per evaluation, and whose expected alerts are the ones the
evaluator fired at each evaluation; `promtool test rules` then fails on any disagreement.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from expert.lakehouse.monitoring import Sample, Transition, load_rules


def promtool_binary() -> str | None:
    """The `promtool` on PATH (Debian's `prometheus` package installs it), or None."""
    return shutil.which("promtool")


def run_promtool(
    promtool: str, *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """One promtool command, its output captured (it never prompts)."""
    return subprocess.run(
        [promtool, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


@dataclass(frozen=True)
class RulesUnitTest:
    """A written `promtool test rules` file and what it asserts."""

    path: Path
    series: int
    assertions: int


def rules_unit_test(
    rules_file: Path,
    ticks: Sequence[tuple[float, Sequence[Sample]]],
    transitions: Sequence[Transition],
    interval_s: int,
    path: Path,
) -> RulesUnitTest:
    """A `promtool test rules` file: the scraped series as input, the evaluator's alerts as expected."""
    rules = load_rules(rules_file)
    wanted = {r.metric for r in rules}
    series: dict[str, list[str]] = {}
    for index, (_, samples) in enumerate(ticks):
        for sample in samples:
            if sample.name not in wanted:
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values = series.setdefault(f"{sample.name}{{{labels}}}", ["_"] * len(ticks))
            values[index] = repr(float(sample.value))
    tests = []
    for at, _ in ticks:
        firing: dict[str, list[dict[str, Any]]] = {r.name: [] for r in rules}
        for transition in transitions:
            alert = transition.alert
            ends = alert.resolved_at if alert.resolved_at is not None else float("inf")
            if alert.fired_at is not None and alert.fired_at <= at < ends:
                labels = {k: v for k, v in alert.labels.items() if k != "alertname"}
                entry = {"exp_labels": labels, "exp_annotations": alert.annotations}
                if entry not in firing[alert.rule.name]:
                    firing[alert.rule.name].append(entry)
        tests += [
            {"eval_time": f"{int(at)}s", "alertname": name, "exp_alerts": alerts} for name, alerts in firing.items()
        ]
    document = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": f"{interval_s}s",
        "tests": [
            {
                "interval": f"{interval_s}s",
                "input_series": [{"series": s, "values": " ".join(v)} for s, v in sorted(series.items())],
                "alert_rule_test": tests,
            }
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return RulesUnitTest(path, len(series), len(tests))
