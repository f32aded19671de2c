"""`expert capstone check`: the capstone's ten requirements, verified objectively from a manifest.

Why a manifest: the capstone is the learner's own platform, built where they like. They point
`capstone/manifest.toml` at their artifacts (tables, checkpoints, a registered model, a dashboard,
metrics and alert rules, a cost report, policies, a restore, a diagram and runbooks) and every
requirement is checked from what is there: counts from the tables, the alias from the registry,
the DOM from a browser, the rules from promtool. tests/test_capstone.py builds a minimal capstone
that passes every check, and broken ones that each fail the requirement they break; it also checks
`capstone/reference.toml`, this repository's own patterns as a capstone, against their outputs.

Paths in a manifest are relative to the repository root; `${WORK}` is the work root (`.work/`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlglot
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from expert import PROJECT_ROOT
from expert.exercises.verdict import CheckFailedError, expect
from expert.runtime.errors import ExpertError
from expert.runtime.workdir import work_root

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

console = Console(highlight=False)
DEFAULT_MANIFEST = PROJECT_ROOT / "capstone" / "manifest.toml"
REFERENCE_MANIFEST = PROJECT_ROOT / "capstone" / "reference.toml"
"""This repository's own patterns as a capstone (after `expert run all`): an example, not the learner's work."""
COST_UNITS = ("credit", "usd", "$", "dbu")


@dataclass(frozen=True)
class Requirement:
    key: str
    title: str
    check: Callable[[dict[str, Any], Capstone], str]


@dataclass(frozen=True)
class Outcome:
    requirement: Requirement
    passed: bool
    evidence: str


class Capstone:
    """A manifest and the engines its checks need (Spark starts only if a table must be read)."""

    def __init__(self, manifest: Path) -> None:
        if not manifest.is_file():
            raise ExpertError(f"no capstone manifest at {manifest}", "copy capstone/manifest.toml and fill it in")
        try:
            self.data = tomllib.loads(manifest.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ExpertError(f"{manifest} is not valid TOML: {exc}", "fix the line it names") from None
        self.manifest = manifest

    def section(self, key: str) -> dict[str, Any]:
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise CheckFailedError("manifest", f"[{key}] is missing from {self.manifest.name}")
        return value

    def path(self, value: str, what: str) -> Path:
        resolved = Path(str(value).replace("${WORK}", str(work_root())))
        resolved = resolved if resolved.is_absolute() else PROJECT_ROOT / resolved
        expect(resolved.exists(), f"{what} exists", f"{resolved} does not exist")
        return resolved

    @property
    def spark(self) -> SparkSession:
        from expert.runtime.spark import get_spark

        return get_spark()

    def delta_rows(self, location: Path, what: str) -> int:
        from expert.lakehouse.delta_ops import is_delta_table

        expect(is_delta_table(self.spark, str(location)), f"{what} is a Delta table", str(location))
        rows = int(self.spark.read.format("delta").load(str(location)).count())
        expect(rows > 0, f"{what} has rows", f"{location} is empty")
        return rows

    def history(self, location: Path) -> list[dict[str, Any]]:
        from expert.lakehouse.delta_ops import history

        return history(self.spark, str(location), limit=None)


def check_ingestion(section: dict[str, Any], cap: Capstone) -> str:
    tables = section.get("bronze", [])
    sources = {str(t.get("source", "")) for t in tables}
    expect(len(sources - {""}) >= 2, "at least two kinds of source", f"sources named: {sorted(sources)}")
    counts = [f"{t['source']} {cap.delta_rows(cap.path(t['path'], 'bronze table'), 'bronze table'):,}" for t in tables]
    return f"{len(tables)} bronze tables from {len(sources)} kinds of source (rows: {', '.join(counts)})"


def check_medallion(section: dict[str, Any], cap: Capstone) -> str:
    totals: dict[str, int] = {}
    for layer in ("bronze", "silver", "gold"):
        paths = section.get(layer, [])
        expect(bool(paths), f"a {layer} layer", f"no {layer} tables listed")
        totals[layer] = sum(cap.delta_rows(cap.path(p, f"{layer} table"), f"{layer} table") for p in paths)
    expect(totals["gold"] < totals["bronze"], "gold aggregates what bronze holds",
           f"gold has {totals['gold']:,} rows, bronze {totals['bronze']:,}")  # fmt: skip
    return ", ".join(f"{layer} {rows:,} rows" for layer, rows in totals.items())


def check_pipelines(section: dict[str, Any], cap: Capstone) -> str:
    checkpoint = cap.path(section.get("streaming_checkpoint", ""), "streaming checkpoint")
    commits = [p for p in (checkpoint / "commits").glob("[0-9]*")] if (checkpoint / "commits").is_dir() else []
    offsets = [p for p in (checkpoint / "offsets").glob("[0-9]*")] if (checkpoint / "offsets").is_dir() else []
    expect(bool(commits) and bool(offsets), "the streaming query committed micro-batches",
           f"{len(offsets)} offsets, {len(commits)} commits in {checkpoint}")  # fmt: skip
    batch = cap.path(section.get("batch_table", ""), "batch table")
    cap.delta_rows(batch, "batch table")
    operations = [str(h.get("operation")) for h in cap.history(batch)]
    expect(len(operations) >= 2, "the batch table was written by more than one run", f"history: {operations}")
    return f"streaming: {len(commits)} committed micro-batches; batch: {len(operations)} commits ({', '.join(sorted(set(operations)))})"


def check_ml(section: dict[str, Any], cap: Capstone) -> str:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = str(section.get("tracking_uri", "")).replace("${WORK}", str(work_root()))
    expect(bool(uri), "a tracking URI", "tracking_uri is empty")
    client = MlflowClient(tracking_uri=uri, registry_uri=str(section.get("registry_uri", uri)))
    name, alias = str(section.get("model", "")), str(section.get("alias", ""))
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise CheckFailedError("the model's alias resolves", f"{name}@{alias}: {str(exc).splitlines()[0]}") from None
    run = client.get_run(version.run_id) if version.run_id else None
    metrics = sorted(run.data.metrics) if run else []
    expect(bool(metrics), "the deployed version comes from a run with metrics", f"{name} v{version.version}")
    return f"{name}@{alias} → version {version.version}, trained in run {version.run_id[:8]} ({', '.join(metrics[:4])})"


def check_dashboard(section: dict[str, Any], cap: Capstone) -> str:
    from expert.runtime.browser import chromium, render

    page = cap.path(section.get("file", ""), "dashboard")
    html = page.read_text(errors="replace")
    expect("<script src=" not in html, "the dashboard is self-contained", "it loads a script from elsewhere")
    if chromium() is None:
        raise CheckFailedError("the dashboard renders", "Chromium is needed to render it: run `make tools`")
    rendered = render(page)
    charts = len(re.findall(r'class="[^"]*js-plotly-plot', rendered.dom))
    svgs = rendered.dom.count('class="main-svg"')
    expect(charts >= 2 and svgs >= charts, "the dashboard renders at least two charts",
           f"{charts} charts, {svgs} drawn")  # fmt: skip
    expect(not rendered.console_errors, "no script error while rendering", "; ".join(rendered.console_errors[:3]))
    return f"{page.name} rendered in headless Chromium: {charts} charts drawn, no script error"


def check_observability(section: dict[str, Any], cap: Capstone) -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        raise CheckFailedError("promtool accepts the metrics and rules", "promtool is not installed: run `make tools`")
    metrics = cap.path(section.get("metrics", ""), "metrics")
    rules = cap.path(section.get("alert_rules", ""), "alert rules")
    text = metrics.read_text()
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    expect(checked.returncode == 0, "promtool accepts the metrics", (checked.stdout + checked.stderr).strip()[:300])
    checked = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60, check=False
    )
    expect(checked.returncode == 0, "promtool accepts the alert rules", (checked.stdout + checked.stderr).strip()[:300])
    groups = (yaml.safe_load(rules.read_text()) or {}).get("groups", [])
    alerts = [r for g in groups for r in g.get("rules", []) if "alert" in r]
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    expect(
        bool(alerts) and bool(series), "metrics and at least one alert", f"{len(series)} series, {len(alerts)} alerts"
    )
    return f"{len(series)} series and {len(alerts)} alert rules, both accepted by promtool"


def check_cost(section: dict[str, Any], cap: Capstone) -> str:
    report = cap.path(section.get("report", ""), "cost report")
    try:
        data = json.loads(report.read_text())
    except json.JSONDecodeError as exc:
        raise CheckFailedError("the cost report is JSON", f"{report.name}: {exc}") from None
    figures = list(_figures(data))
    costs = [f for f in figures if any(unit in str(f.get("unit", "")).lower() for unit in COST_UNITS)]
    expect(bool(costs), "the cost report has computed cost figures (credits, USD or DBU)",
           f"{len(figures)} figures, none in a cost unit")  # fmt: skip
    shown = "; ".join(f"{f['label']} = {_number(f['value'])} {f['unit']}" for f in costs[:3])
    return f"{len(costs)} cost figures, e.g. {shown}"


def _number(value: Any) -> str:
    """A report's figure as a reader wants it: 1,384.50, not 1384.5010827777774."""
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def _figures(data: Any) -> Iterable[dict[str, Any]]:
    """Figures of an `expert run --json` document, or of a report with a top-level `figures` list."""
    if isinstance(data, dict):
        yield from (f for f in data.get("figures", []) if isinstance(f, dict))
        for pattern in data.get("patterns", []):
            yield from _figures(pattern)


ROW_ACCESS_POLICY = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?ROW\s+ACCESS\s+POLICY\s+(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+AS\s*\(.*?\)"
    r"\s*RETURNS\s+BOOLEAN\s*->(?P<body>.*)",
    re.IGNORECASE | re.DOTALL,
)


def _snowflake_statements(sql: str) -> list[exp.Expression]:
    """Each statement of a Snowflake script, parsed by sqlglot.

    sqlglot (30.x) reads ROW ACCESS POLICY only as a table property (`... ON (columns)`), so it rejects
    `CREATE ROW ACCESS POLICY name AS (args) RETURNS BOOLEAN -> body`, Snowflake's own syntax. Such a
    statement is kept whole as a Command, as sqlglot keeps other DDL it does not model, once its body parses.
    """
    statements: list[list[Token]] = [[]]
    for token in sqlglot.tokenize(sql, read="snowflake"):
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    parsed: list[exp.Expression] = []
    with _sqlglot_quiet():
        for tokens in filter(None, statements):
            text = sql[tokens[0].start : tokens[-1].end + 1]
            if policy := ROW_ACCESS_POLICY.fullmatch(text):
                sqlglot.parse_one(policy["body"], read="snowflake")
                parsed.append(exp.Command(this="CREATE", expression=exp.Literal.string(text[len("CREATE") :].strip())))
            else:
                parsed.append(sqlglot.parse_one(text, read="snowflake"))
    return parsed


@contextlib.contextmanager
def _sqlglot_quiet() -> Iterator[None]:
    """sqlglot logs a warning for each statement it keeps as a Command (SHOW GRANTS ...): expected here, not news."""
    log = logging.getLogger("sqlglot")
    was_disabled, log.disabled = log.disabled, True
    try:
        yield
    finally:
        log.disabled = was_disabled


def check_security(section: dict[str, Any], cap: Capstone) -> str:
    policies = cap.path(section.get("policies", ""), "access policies")
    try:
        statements = _snowflake_statements(policies.read_text())
    except sqlglot.errors.SqlglotError as exc:
        raise CheckFailedError("the policies parse as Snowflake SQL", str(exc).splitlines()[0]) from None
    text = [s.sql(dialect="snowflake").upper() for s in statements]
    kinds = {
        "masking policies": sum("CREATE" in t and "MASKING POLICY" in t for t in text),
        "row access policies": sum("CREATE" in t and "ROW ACCESS POLICY" in t for t in text),
        "grants": sum(isinstance(s, exp.Grant) or t.startswith("GRANT") for s, t in zip(statements, text, strict=True)),
    }
    applied = sum(("SET MASKING POLICY" in t) or ("ADD ROW ACCESS POLICY" in t) for t in text)
    expect(all(kinds.values()) and applied > 0, "masking and row access policies, applied, and grants",
           f"{kinds}, {applied} applied")  # fmt: skip
    return ", ".join(f"{n} {k}" for k, n in kinds.items()) + f", {applied} policy attachments"


def check_recovery(section: dict[str, Any], cap: Capstone) -> str:
    table = cap.path(section.get("restored_table", ""), "restored table")
    rows = cap.delta_rows(table, "restored table")
    operations = [str(h.get("operation")) for h in cap.history(table)]
    expect("RESTORE" in operations, "the table was restored (a RESTORE in its history)", f"history: {operations}")
    return f"{table.name}: RESTORE in its history of {len(operations)} commits, {rows:,} rows now"


def check_documentation(section: dict[str, Any], cap: Capstone) -> str:
    diagram = cap.path(section.get("architecture", ""), "architecture diagram")
    text = diagram.read_text(errors="replace") if diagram.suffix in (".mmd", ".md") else ""
    edges = len(re.findall(r"-->|---", text))
    expect(edges >= 5 or diagram.suffix in (".png", ".svg"), "the architecture diagram shows the flow",
           f"{diagram.name}: {edges} edges")  # fmt: skip
    folder = cap.path(section.get("runbooks", ""), "runbooks folder")
    books = [p for p in folder.glob("*.md") if p.name.lower() != "readme.md"]
    complete = [p for p in books if all(h in p.read_text().lower() for h in ("## symptom", "## fix"))]
    expect(len(complete) >= 3, "at least three runbooks, each with Symptom and Fix sections",
           f"{len(complete)} of {len(books)} complete in {folder}")  # fmt: skip
    return f"{diagram.name} ({edges} edges), {len(complete)} runbooks with symptom and fix"


REQUIREMENTS = (
    Requirement("ingestion", "1. Multi-source data ingestion", check_ingestion),
    Requirement("medallion", "2. Bronze-Silver-Gold architecture", check_medallion),
    Requirement("pipelines", "3. Batch and streaming pipelines", check_pipelines),
    Requirement("ml", "4. ML model deployment", check_ml),
    Requirement("dashboard", "5. BI dashboard", check_dashboard),
    Requirement("observability", "6. Full observability", check_observability),
    Requirement("cost", "7. Cost optimization", check_cost),
    Requirement("security", "8. Security compliance", check_security),
    Requirement("recovery", "9. Disaster recovery", check_recovery),
    Requirement("documentation", "10. Documentation", check_documentation),
)


def check_manifest(manifest: Path) -> list[Outcome]:
    """Every requirement, in order; one that fails does not stop the others."""
    capstone = Capstone(manifest)
    outcomes = []
    for requirement in REQUIREMENTS:
        try:
            evidence = requirement.check(capstone.section(requirement.key), capstone)
            outcomes.append(Outcome(requirement, True, evidence))
        except CheckFailedError as exc:
            outcomes.append(Outcome(requirement, False, f"{exc.invariant}: {exc.detail}"))
    return outcomes


def cmd_capstone(manifest: Path | None) -> int:
    from expert.exercises.progress import Progress

    manifest = manifest or DEFAULT_MANIFEST
    outcomes = check_manifest(manifest)
    table = Table(title="Capstone requirements", title_justify="left")
    table.add_column("", width=2)
    table.add_column("requirement")
    table.add_column("evidence", overflow="fold")
    for outcome in outcomes:
        mark = "[green]✓[/]" if outcome.passed else "[red]✗[/]"
        table.add_row(mark, escape(outcome.requirement.title), escape(outcome.evidence))
    console.print(table)
    passed = sum(o.passed for o in outcomes)
    console.print(f"{passed} of {len(outcomes)} requirements met")
    if manifest.resolve() == REFERENCE_MANIFEST.resolve():
        console.print(
            "(the reference capstone: your progress is unchanged; `expert progress` counts your own manifest)"
        )
    else:
        Progress.load().capstone_checked({o.requirement.key: o.passed for o in outcomes})
    return 0 if passed == len(outcomes) else 1
