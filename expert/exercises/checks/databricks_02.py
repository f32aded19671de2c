"""Checks for databricks/02 (monitoring): alert rules replayed through Prometheus' own engine, and the
metrics the pipeline exports, on schedules and runs the starter does not show.

Why promtool: an alert rule is only right if Prometheus evaluates it the way its author thinks.
`promtool test rules` replays hidden series (a stalled source, a late run, a stopped pipeline)
through Prometheus' rule engine and compares the alerts at every evaluation with the ones the
check's ground truth expects; the ground truth is the lesson's own evaluator (Prometheus' `for`
semantics, tested against promtool) running the rule as the runbook states it.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from expert import PROJECT_ROOT
from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.lakehouse.layout import BRONZE_TABLES
from expert.lakehouse.monitoring import AlertEvaluator, PipelineMetrics, Sample, parse_rule
from expert.lakehouse.promtool import promtool_binary, run_promtool
from expert.runtime.errors import ExpertError

if TYPE_CHECKING:
    from expert.lakehouse.quality import QualityCounts

SOURCES = tuple(BRONZE_TABLES)
FRESHNESS = "lakehouse_source_freshness_seconds"
ROWS_LAST_RUN = "lakehouse_source_rows_last_run"
RUNS_TOTAL = "lakehouse_pipeline_runs_total"
STALE_ALERT = "LakehouseSourceStale"
STALE_SPEC = {"alert": STALE_ALERT, "expr": f"{FRESHNESS} > 600", "for": "5m"}
"""The rule as the runbook states it (docs/runbooks/source-stale.md): the check's ground truth."""
RUN_EVERY_MIN = 10
HORIZON_MIN = 100


def promtool() -> str:
    """The promtool binary, or a clear error: these checks run rules through Prometheus itself."""
    path = promtool_binary()
    if path is None:
        raise ExpertError(
            "promtool is not installed: this check replays your rule through Prometheus' own rule engine",
            "`make tools` installs it (on Debian/Ubuntu: `sudo apt-get install prometheus`, which ships promtool)",
        )
    return path


# ---------------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class Run:
    """One scheduled pipeline run: when it finished (minutes) and the rows each source delivered."""

    at: float
    rows: Mapping[str, int]


@dataclass(frozen=True)
class Timeline:
    """The series a scrape every minute would see, for a schedule of runs."""

    runs: tuple[Run, ...]
    minutes: int = HORIZON_MIN

    def freshness(self, source: str, minute: int) -> float:
        delivered = [r.at for r in self.runs if r.at <= minute and r.rows.get(source, 0) > 0]
        return (minute - max(delivered, default=0.0)) * 60

    def rows_last_run(self, source: str, minute: int) -> int | None:
        done = [r for r in self.runs if r.at <= minute]
        return done[-1].rows.get(source, 0) if done else None

    def series(self) -> dict[str, list[float | None]]:
        """Every series the exercise's rules may read, one value per minute (None: no sample yet)."""
        out: dict[str, list[float | None]] = {}
        for source in SOURCES:
            label = f'{{source="{source}"}}'
            out[FRESHNESS + label] = [self.freshness(source, m) for m in range(self.minutes + 1)]
            last = [self.rows_last_run(source, m) for m in range(self.minutes + 1)]
            out[ROWS_LAST_RUN + label] = [None if v is None else float(v) for v in last]
        out[RUNS_TOTAL] = [float(sum(r.at <= m for r in self.runs)) for m in range(self.minutes + 1)]
        return out

    def expected_stale(self) -> list[set[str]]:
        """Per minute, the sources the runbook's rule has firing (the lesson's evaluator: Prometheus'
        pending → firing semantics)."""
        evaluator = AlertEvaluator([parse_rule(STALE_SPEC)])
        firing = []
        for minute in range(self.minutes + 1):
            samples = [Sample(FRESHNESS, {"source": s}, self.freshness(s, minute)) for s in SOURCES]
            evaluator.evaluate(samples, minute * 60.0)
            firing.append({a.labels["source"] for a in evaluator.firing()})
        return firing


def _volumes(rng: np.random.Generator) -> dict[str, int]:
    return {s: int(rng.integers(400, 1_600)) for s in SOURCES}


def scheduled(
    rng: np.random.Generator, offset: float, *, skip: range = range(0), late: Mapping[int, float] | None = None
) -> list[Run]:
    """Runs every 10 minutes at `offset` past, except the runs in `skip`; run k finishes `late[k]` minutes late."""
    late = late or {}
    return [
        Run(RUN_EVERY_MIN * k + offset + late.get(k, 0.0), _volumes(rng))
        for k in range(HORIZON_MIN // RUN_EVERY_MIN + 1)
        if k not in skip and RUN_EVERY_MIN * k + offset + late.get(k, 0.0) <= HORIZON_MIN
    ]


@dataclass(frozen=True)
class Scenario:
    """One hidden situation, the invariant it proves and the minutes at which alerts are compared."""

    invariant: str
    timeline: Timeline
    window: range
    story: str
    expected: list[set[str]] = field(default_factory=list)


def stale_scenarios(seed: int) -> tuple[Scenario, ...]:
    """A stalled source (fires, then resolves), a late run (pages nobody), a stopped pipeline (all fire)."""
    rng = np.random.default_rng(seed)
    offset = float(rng.uniform(0.2, 0.8))
    stalled = str(rng.choice(SOURCES))
    first_empty = int(rng.integers(2, 4))
    resumes = first_empty + int(rng.integers(3, 5))
    runs = [
        Run(r.at, {**r.rows, stalled: 0}) if first_empty <= int(r.at // RUN_EVERY_MIN) < resumes else r
        for r in scheduled(rng, offset)
    ]
    stall = Timeline(tuple(runs))
    resumed_at = RUN_EVERY_MIN * resumes + offset
    late_run = int(rng.integers(3, 7))
    lateness = float(rng.uniform(3.2, 4.5))
    late = Timeline(tuple(scheduled(rng, offset, late={late_run: lateness})))
    stop = int(rng.integers(3, 5))
    restart = stop + int(rng.integers(3, 5))
    stopped = Timeline(tuple(scheduled(rng, offset, skip=range(stop, restart))))
    scenarios = (
        Scenario(
            "a stalled source pages once its newest data is more than 10 minutes old, and has been for 5 minutes",
            stall,
            range(0, math.floor(resumed_at) + 1),
            f"{stalled} delivers nothing from the run at {RUN_EVERY_MIN * first_empty + offset:.1f} min on "
            "while the pipeline keeps running",
        ),
        Scenario(
            "when the pipeline itself stops running, every source pages (no run reports its rows any more)",
            stopped,
            range(0, HORIZON_MIN + 1),
            f"no pipeline run from {RUN_EVERY_MIN * stop + offset:.1f} min to {RUN_EVERY_MIN * restart + offset:.1f} min",
        ),
        Scenario(
            "a run a few minutes late pages nobody",
            late,
            range(0, HORIZON_MIN + 1),
            f"the run due at {RUN_EVERY_MIN * late_run + offset:.1f} min finishes {lateness:.1f} min late",
        ),
        Scenario(
            "the alert resolves as soon as data flows again",
            stall,
            range(math.floor(resumed_at) + 1, HORIZON_MIN + 1),
            f"{stalled} delivers again at {resumed_at:.1f} min",
        ),
    )
    return tuple(Scenario(s.invariant, s.timeline, s.window, s.story, s.timeline.expected_stale()) for s in scenarios)


# ---------------------------------------------------------------------------------- promtool


@dataclass(frozen=True)
class AlertMismatch:
    """The first evaluation at which promtool's alerts differ from the expected ones."""

    minute: int
    expected: list[str]
    got: list[str]


FAILURE = re.compile(
    r"alertname: (?P<name>\S+), time: (?P<time>[^,]+),\s*exp:\[(?P<exp>.*?)\],\s*got:\[(?P<got>.*?)\]\s*(?:$|\n)",
    re.DOTALL,
)
LABEL_SOURCE = re.compile(r'source="([^"]*)"')


def first_mismatch(output: str) -> AlertMismatch | None:
    """promtool test rules' first failure, as the sources expected and got (None if none is parseable)."""
    match = FAILURE.search(output)
    if match is None:
        return None
    exp, got = (_alerts(match.group(k)) for k in ("exp", "got"))
    return AlertMismatch(promtool_minutes(match.group("time")), exp, got)


def promtool_minutes(text: str) -> int:
    """An evaluation time as promtool prints it (`26m`, `1h1m`) in whole minutes."""
    units = {"h": 60.0, "m": 1.0, "s": 1 / 60}
    return round(sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)))


def _alerts(text: str) -> list[str]:
    """Each alert of a promtool list as its source, or its labels when it has no `source` label."""
    alerts = []
    for labels in re.findall(r"Labels:\{([^}]*)\}", text):
        sources = LABEL_SOURCE.findall(labels)
        alerts.append(sources[0] if sources else f"one alert with no source label ({labels})")
    return alerts


def _named(alerts: list[str]) -> str:
    return ", ".join(alerts) if alerts else "nobody"


def rules_document(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A rule file with one group holding `rule` (annotations left out: promtool would compare them too)."""
    kept = {k: v for k, v in rule.items() if k != "annotations"}
    return {"groups": [{"name": "exercise", "rules": [kept]}]}


def rules_test(rules_file: Path, scenario: Scenario, labels: Mapping[str, str]) -> dict[str, Any]:
    """A `promtool test rules` document: the scenario's series, the expected alerts at every minute."""
    series = [
        {"series": name, "values": " ".join("_" if v is None else repr(v) for v in values)}
        for name, values in scenario.timeline.series().items()
    ]
    tests = [
        {
            "eval_time": f"{minute}m",
            "alertname": STALE_ALERT,
            "exp_alerts": [{"exp_labels": {"source": s, **labels}} for s in sorted(scenario.expected[minute])],
        }
        for minute in scenario.window
    ]
    return {
        "rule_files": [rules_file.name],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": tests}],
    }


def _learner_rule(rule: Any) -> dict[str, Any]:
    expect(
        isinstance(rule, Mapping) and isinstance(rule.get("expr"), str),
        "the rule is a mapping with `alert`, `expr`, `for`, `labels` and `annotations`, as in alert_rules.yml",
        f"stale_source_rule() returned {type(rule).__name__}",
    )
    return dict(rule)


def check_stale_source_alert(learner: LearnerCode, ctx: CheckContext) -> str:
    """The learner's rule, replayed by promtool on four hidden schedules against the runbook's rule."""
    stale_source_rule = learner.function("stale_source_rule", ())
    rule = _learner_rule(stale_source_rule())
    expect(
        rule.get("alert") == STALE_ALERT,
        f"the alert is named {STALE_ALERT} (silences, dashboards and the runbook find it by name)",
        f"alert: {rule.get('alert')!r}",
    )
    labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
    expect(labels.get("severity") == "page", "a stalled source pages: labels.severity is page", f"labels: {labels}")
    runbook = str((rule.get("annotations") or {}).get("runbook_url", ""))
    heading = (
        (PROJECT_ROOT / runbook).read_text().splitlines()[0] if runbook and (PROJECT_ROOT / runbook).is_file() else ""
    )
    expect(
        STALE_ALERT in heading,
        "the page links to the runbook that says what to do (annotations.runbook_url, a file in docs/runbooks)",
        f"runbook_url {runbook!r}" + (f" is titled {heading!r}" if heading else " is not a file of this repository"),
    )
    binary = promtool()
    rules_file = ctx.workdir / "stale_source_rule.yml"
    rules_file.write_text(yaml.safe_dump(rules_document(rule), sort_keys=False))
    linted = run_promtool(binary, "check", "rules", str(rules_file))
    expect(
        linted.returncode == 0,
        "Prometheus accepts the rule (promtool check rules)",
        " ".join((linted.stdout + linted.stderr).replace(str(rules_file), rules_file.name).split())[-300:],
    )
    evaluations = 0
    for number, scenario in enumerate(stale_scenarios(ctx.seed())):
        test_file = ctx.workdir / f"scenario_{number}.yml"
        test_file.write_text(yaml.safe_dump(rules_test(rules_file, scenario, labels), sort_keys=False))
        done = run_promtool(binary, "test", "rules", test_file.name, cwd=ctx.workdir)
        output = done.stdout + done.stderr
        mismatch = first_mismatch(output)
        if done.returncode != 0 and mismatch is None:
            expect(False, "promtool test rules runs the rule", " ".join(output.split())[-300:])
        if mismatch is not None:
            ages = ", ".join(f"{s} {scenario.timeline.freshness(s, mismatch.minute) / 60:.1f} min" for s in SOURCES)
            expect(
                False,
                scenario.invariant,
                f"{scenario.story}: at minute {mismatch.minute} Prometheus fires for {_named(mismatch.got)}, "
                f"the runbook's rule for {_named(mismatch.expected)} (age of the newest data: {ages})",
            )
        evaluations += len(scenario.window)
    stall = stale_scenarios(ctx.seed())[0]
    fired = next(m for m, sources in enumerate(stall.expected) if sources)
    return (
        f"promtool agreed with the runbook's rule at {evaluations} evaluations: the stalled source paged at {fired} min "
        f"and resolved when data flowed again, a late run paged nobody, a stopped pipeline paged all "
        f"{len(SOURCES)} sources"
    )


# ---------------------------------------------------------------------------------- volume


VOLUME_RATIO = "lakehouse_source_volume_ratio"
VOLUME_ALERT_BELOW = 0.5
"""LakehouseSourceVolumeDrop fires below this ratio (alert_rules.yml, docs/runbooks/volume-anomaly.md)."""


def volume_runs(seed: int, runs: int = 14) -> list[dict[str, int]]:
    """Rows per source per run: normal noise, a redelivery spike, a stall, a real drop, a late starter."""
    rng = np.random.default_rng(seed)
    base = {s: int(rng.integers(300, 3_000)) for s in SOURCES}
    table = [{s: int(base[s] * rng.uniform(0.85, 1.15)) for s in SOURCES} for _ in range(runs)]
    late_starter = str(rng.choice(SOURCES))
    for run in range(int(rng.integers(1, 3))):
        table[run][late_starter] = 0
    for source in SOURCES:
        spike, stall = int(rng.integers(3, 5)), int(rng.integers(6, 8))
        table[spike][source] = int(table[spike][source] * rng.uniform(2.2, 3.0))
        for run in range(stall, stall + int(rng.integers(2, 4))):
            table[run][source] = 0
        table[runs - 2][source] = int(base[source] * rng.uniform(0.25, 0.45))
    return table


def expected_ratio(earlier: Sequence[int], rows: int) -> float | None:
    """The lesson's ratio: rows / median of the earlier runs that delivered data (None: no baseline yet)."""
    with_data = [n for n in earlier if n > 0]
    return rows / statistics.median(with_data) if with_data else None


def _gauges(samples: Sequence[Sample], name: str) -> dict[str, float]:
    return {s.labels.get("source", ""): s.value for s in samples if s.name == name}


def _alert_word(ratio: float | None) -> str:
    if ratio is None:
        return "nothing"
    return f"{ratio:.4f}" + (" (the volume alert fires)" if ratio < VOLUME_ALERT_BELOW else "")


def check_volume_ratio(learner: LearnerCode, ctx: CheckContext) -> str:
    """Run by run, the exported rows and ratios against the check's own baseline, on hidden volumes."""
    record_volume = learner.function("record_volume", ("metrics", "rows", "history"))
    metrics: PipelineMetrics = PipelineMetrics()
    history: dict[str, list[int]] = {}
    table = volume_runs(ctx.seed())
    earlier: dict[str, list[int]] = {s: [] for s in SOURCES}
    drops = []
    for number, rows in enumerate(table, start=1):
        record_volume(metrics, dict(rows), history)
        samples = metrics.samples()
        exported, ratios = _gauges(samples, ROWS_LAST_RUN), _gauges(samples, VOLUME_RATIO)
        for source in SOURCES:
            delivered, before = rows[source], earlier[source]
            expect(
                exported.get(source) == delivered,
                "every run exports the rows each source delivered, zero included",
                f"run {number}: {source} delivered {delivered} rows, {ROWS_LAST_RUN} says {exported.get(source)}",
            )
            want, have = expected_ratio(before, delivered), ratios.get(source)
            expect(
                want is not None or have is None,
                "no ratio before the source has a baseline (an earlier run that delivered data)",
                f"run {number}: {source} has no earlier run with data, yet exports a ratio of {_alert_word(have)}",
            )
            if want is not None:
                with_data = [n for n in before if n > 0]
                expect(
                    have is not None and math.isclose(have, want, rel_tol=1e-9),
                    "ratio = rows this run / median of the earlier runs that delivered data",
                    f"run {number}: {source} delivered {delivered} rows against a baseline of "
                    f"{statistics.median(with_data):g} (the median of {len(with_data)} runs with data; "
                    f"{len(before) - len(with_data)} empty runs left out): ratio {_alert_word(want)}, "
                    f"exported {_alert_word(have)}",
                )
                if want < VOLUME_ALERT_BELOW and delivered > 0:
                    drops.append(f"{source} at run {number} ({want:.2f})")
            before.append(delivered)
    return (
        f"{len(table)} runs x {len(SOURCES)} sources: rows and ratios exact, no ratio before a baseline, "
        f"empty runs and spikes kept out of the baseline; the real drops: {', '.join(drops)}"
    )


# ---------------------------------------------------------------------------------- data-quality metrics


@dataclass(frozen=True)
class MetricSpec:
    """One metric the pipeline must export: its sample name, type and label names."""

    sample: str
    kind: str
    labels: frozenset[str]


QUALITY_METRICS = (
    MetricSpec("lakehouse_dq_rows_checked_total", "counter", frozenset({"table"})),
    MetricSpec("lakehouse_dq_violations_total", "counter", frozenset({"table", "expectation", "action"})),
    MetricSpec("lakehouse_dq_failed_ratio", "gauge", frozenset({"table"})),
)


def quality_runs(seed: int, runs: int = 3) -> list[dict[str, QualityCounts]]:
    """Per run, the expectation outcome of each table that had a batch (the lesson's rules, hidden counts).

    Fail rules never count here: a violated fail rule stops the run before anything is recorded.
    """
    from expert.lakehouse.medallion import DEFAULT_EXPECTATIONS
    from expert.lakehouse.quality import Action, QualityCounts

    rng = np.random.default_rng(seed)
    outcome = []
    for run in range(runs):
        tables = {}
        for table, rules in DEFAULT_EXPECTATIONS.items():
            if run > 0 and rng.random() < 0.25:
                continue
            rows = int(rng.integers(200, 5_000))
            violations = {}
            for rule in rules:
                if rule.action is Action.FAIL or rng.random() < 0.35:
                    violations[rule.name] = 0
                else:
                    violations[rule.name] = int(rng.integers(1, max(2, rows // 40)))
            tables[table] = QualityCounts(rows, violations, {r.name: r.action for r in rules})
        outcome.append(tables)
    return outcome


def exposition_problems(binary: str, text: str) -> list[str]:
    """What `promtool check metrics` finds in an exposition (empty: clean)."""
    done = run_promtool(binary, "check", "metrics", stdin=text)
    found = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return found if done.returncode != 0 else []


def scraped(text: str) -> tuple[dict[str, str], dict[str, dict[frozenset[tuple[str, str]], float]]]:
    """An exposition as Prometheus reads it: each sample name's type, and its series' values."""
    from prometheus_client.parser import text_string_to_metric_families

    kinds: dict[str, str] = {}
    values: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            kinds[sample.name] = family.type
            values.setdefault(sample.name, {})[frozenset(sample.labels.items())] = float(sample.value)
    return kinds, values


def _value(value: float | None) -> str:
    return "missing" if value is None else f"{value:g}"


def _series(name: str, labels: frozenset[tuple[str, str]]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels)) + "}"


def check_quality_metrics(learner: LearnerCode, ctx: CheckContext) -> str:
    """The exposition after every run: promtool-clean, the right types and labels, the right values."""
    from prometheus_client import CollectorRegistry, generate_latest

    quality_metrics = learner.function("quality_metrics", ("registry",))
    record_quality = learner.function("record_quality", ("metrics", "table", "counts"))
    binary = promtool()
    registry = CollectorRegistry()
    metrics = quality_metrics(registry)
    checked: dict[str, int] = {}
    violations: dict[tuple[str, str, str], int] = {}
    ratios: dict[str, float] = {}
    runs = quality_runs(ctx.seed())
    for number, tables in enumerate(runs, start=1):
        for table, counts in tables.items():
            record_quality(metrics, table, counts)
            checked[table] = checked.get(table, 0) + counts.rows_in
            for rule, count in counts.violations.items():
                key = (table, rule, counts.actions[rule].value)
                violations[key] = violations.get(key, 0) + count
            ratios[table] = counts.dropped / counts.rows_in
        text = generate_latest(registry).decode()
        problems = exposition_problems(binary, text)
        expect(
            not problems,
            "Prometheus accepts the exposition without a lint finding (promtool check metrics)",
            f"after run {number}: " + "; ".join(problems[:3]),
        )
        kinds, values = scraped(text)
        for spec in QUALITY_METRICS:
            expect(
                kinds.get(spec.sample) == spec.kind,
                "each metric has its type: counters for what accumulates, a gauge for the last run's share",
                f"{spec.sample} is "
                + (f"a {kinds[spec.sample]}" if spec.sample in kinds else "not exported")
                + f"; it must be a {spec.kind}",
            )
            names = {frozenset(dict(series)) for series in values[spec.sample]}
            expect(
                names == {spec.labels},
                "each metric carries exactly its labels (one series per table, per rule and action)",
                f"{spec.sample} has label names {sorted(sorted(n) for n in names)}, expected {sorted(spec.labels)}",
            )
        want = {
            "lakehouse_dq_rows_checked_total": {frozenset({("table", t)}): float(n) for t, n in checked.items()},
            "lakehouse_dq_violations_total": {
                frozenset({("table", t), ("expectation", r), ("action", a)}): float(n)
                for (t, r, a), n in violations.items()
            },
            "lakehouse_dq_failed_ratio": {frozenset({("table", t)}): share for t, share in ratios.items()},
        }
        quiet = [k for k, n in violations.items() if n == 0]
        missing = [k for k in quiet if frozenset({("table", k[0]), ("expectation", k[1]), ("action", k[2])})
                   not in values["lakehouse_dq_violations_total"]]  # fmt: skip
        expect(
            not missing,
            "every rule evaluated has a violations series from its first run on, at 0 when nothing failed "
            "(a series born at its first failure hides that failure from increase())",
            f"after run {number}: no series for {len(missing)} of {len(quiet)} rules without violations, "
            f"e.g. {missing[0] if missing else ''}",
        )
        for spec in QUALITY_METRICS:
            have = values[spec.sample]
            wrong = sorted(
                (_series(spec.sample, key), want[spec.sample][key], have.get(key))
                for key in want[spec.sample]
                if not math.isclose(have.get(key, math.nan), want[spec.sample][key], rel_tol=1e-9)
            )
            what = (
                "the share of the table's rows quarantined by drop rules in its last run"
                if spec.kind == "gauge"
                else "the total over every run so far"
            )
            expect(
                not wrong,
                f"{spec.sample} is {what}",
                f"after run {number}: {len(wrong)} series differ, e.g. {wrong[0][0]} is {_value(wrong[0][2])} "
                f"where {wrong[0][1]:g} is right"
                if wrong
                else "",
            )
    series = len(violations)
    return (
        f"{len(runs)} runs: promtool check metrics clean after each, {len(checked)} tables and {series} violation "
        f"series ({sum(n == 0 for n in violations.values())} at 0) with the right types, labels and totals"
    )
