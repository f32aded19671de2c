"""databricks/02: metrics, alert rules, webhook delivery and runbooks — checked with the real Prometheus tools.

The pattern runs Prometheus and Alertmanager when they are installed (`make tools`); the test
that needs their results skips with a clear reason without them (and fails in CI, where
EXPERT_REQUIRE_TOOLS=1 makes the pattern require them too).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import require_tool
from expert import PROJECT_ROOT
from expert.lakehouse import BRONZE_TABLES
from expert.lakehouse.monitoring import (
    AlertEvaluator,
    PipelineMetrics,
    Sample,
    WebhookReceiver,
    alertmanager_payload,
    deliver,
    grafana_dashboard,
    load_rules,
    parse_duration,
    parse_rule,
    referenced_metrics,
)
from expert.lakehouse.snowflake_metrics import SnowflakeMetrics
from expert.runtime.pattern import load_module, select_patterns
from expert.runtime.prometheus import seconds_to_duration


def _pattern():  # type: ignore[no-untyped-def]
    (meta,) = select_patterns("databricks/02")
    return load_module(meta)


RULES = PROJECT_ROOT / "expert" / "databricks" / "observability" / "alert_rules.yml"


@pytest.fixture
def outcome(pattern_run):  # type: ignore[no-untyped-def]
    result = pattern_run("databricks/02")
    assert result.exit_code == 0, result.report.error
    return result


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def test_pattern_fires_and_resolves_the_expected_alerts(outcome) -> None:  # type: ignore[no-untyped-def]
    checks = {c.name: c for c in outcome.report.checks}
    assert all(c.passed for c in checks.values())
    assert "the stall and the bad file fire exactly the expected alerts" in checks
    assert "every alert resolves once the pipeline is healthy again" in checks
    scenario = _pattern()
    stalled = sum(not r.delivers for r in scenario.SCENARIO) > 0
    # a stall fires SourceStale and SourceVolumeDrop for every source; the bad file one DQ alert
    assert int(outcome.report.value("alerts fired")) == 2 * len(BRONZE_TABLES) * stalled + 1


def test_prometheus_and_alertmanager_produced_the_alerts(outcome) -> None:  # type: ignore[no-untyped-def]
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    checks = {c.name: c for c in outcome.report.checks}
    for name in (
        "Alertmanager delivered every alert Prometheus fired and resolved to the webhook",
        "Prometheus fires and resolves the same alerts as the in-process evaluator",
        "SourceStale went through `for: 5m` pending before firing",
        "the 09:00 report rush fires SnowflakeWarehouseQueueing for exactly the warehouses that queued, and it resolves",
    ):
        assert checks[name].passed, name
    assert "Prometheus + Alertmanager" in outcome.report.figure("alerts fired").how
    assert int(outcome.report.value("Snowflake alerts fired")) >= 1
    observability = outcome.workdir / "observability"
    scaled = (observability / "alert_rules.scaled.yml").read_text()
    pattern = _pattern()
    one_evaluation = seconds_to_duration(pattern.EVAL_INTERVAL_S / pattern.SPEEDUP)
    assert f"interval: {one_evaluation}" in scaled, "the rule group's interval, divided by SPEEDUP"
    assert f"for: {one_evaluation}" in scaled, "`for: 5m` is one evaluation, as in the simulation"
    assert (observability / "prometheus" / "prometheus.yml").is_file()
    assert "127.0.0.1:" in (observability / "alertmanager" / "alertmanager.yml").read_text()


def test_promtool_accepts_the_rules_and_catches_broken_ones(tmp_path: Path) -> None:
    assert promtool("check", "rules", str(RULES)).returncode == 0
    document = yaml.safe_load(RULES.read_text())
    for mutation in ({"for": "5 minutes"}, {"expr": "lakehouse_dq_failed_ratio >"}):
        broken = json.loads(json.dumps(document))
        broken["groups"][0]["rules"][0].update(mutation)
        path = tmp_path / "broken.yml"
        path.write_text(yaml.safe_dump(broken))
        assert promtool("check", "rules", str(path)).returncode != 0, mutation


def test_the_exposition_passes_promtool_check_metrics(outcome) -> None:  # type: ignore[no-untyped-def]
    exposition = (outcome.workdir / "observability" / "lakehouse.prom").read_text()
    done = promtool("check", "metrics", stdin=exposition)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = promtool("check", "metrics", stdin="# HELP jobs Jobs.\n# TYPE jobs counter\njobs 3\n")
    assert bad.returncode != 0 and "_total" in bad.stdout + bad.stderr


def test_the_in_process_evaluator_agrees_with_promtool(outcome) -> None:  # type: ignore[no-untyped-def]
    unit_test = outcome.workdir / "observability" / "alert_rules_test.yml"
    document = yaml.safe_load(unit_test.read_text())
    asserted = [t for t in document["tests"][0]["alert_rule_test"] if t["exp_alerts"]]
    assert asserted, "the replay must assert some firing alerts, or it proves nothing"
    done = promtool("test", "rules", str(unit_test), cwd=unit_test.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rejects_a_wrong_expectation(outcome, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    document = yaml.safe_load((outcome.workdir / "observability" / "alert_rules_test.yml").read_text())
    firing = next(t for t in document["tests"][0]["alert_rule_test"] if t["exp_alerts"])
    firing["exp_alerts"] = []
    path = tmp_path / "wrong.yml"
    path.write_text(yaml.safe_dump(document))
    assert promtool("test", "rules", str(path)).returncode != 0


def test_for_clause_goes_pending_then_firing_then_resolves() -> None:
    rule = parse_rule(
        {"alert": "Stale", "expr": 'fresh{source="a"} > 600', "for": "5m", "labels": {"severity": "page"}}
    )
    evaluator = AlertEvaluator([rule])
    series = [0, 900, 1200, 1500, 0]
    transitions = []
    for step, value in enumerate(series):
        samples = [Sample("fresh", {"source": "a"}, value), Sample("fresh", {"source": "b"}, 9999)]
        transitions += [(step, t.status) for t in evaluator.evaluate(samples, step * 300.0)]
    assert transitions == [(2, "firing"), (4, "resolved")]


def test_unsupported_expressions_are_rejected_not_approximated() -> None:
    with pytest.raises(ValueError, match="supports only"):
        parse_rule({"alert": "X", "expr": "rate(lakehouse_stream_input_rows_total[5m]) > 1"})
    with pytest.raises(ValueError, match="equality"):
        parse_rule({"alert": "X", "expr": 'm{a=~"b.*"} > 1'})
    assert parse_duration("1h") == 3600 and parse_duration("30s") == 30


def test_every_rule_has_a_complete_runbook() -> None:
    for rule in load_rules(RULES):
        runbook = PROJECT_ROOT / rule.annotations["runbook_url"]
        text = runbook.read_text()
        for section in ("## Symptom", "## First checks", "## Fix", "## Escalation"):
            assert section in text, f"{runbook.name} lacks {section}"
        assert rule.name in text or rule.name.replace("Lakehouse", "") in text


def test_dashboard_and_rules_read_only_exported_metrics() -> None:
    metrics = PipelineMetrics()
    metrics.stream_batch_seconds.labels("q").observe(1.0)
    for counter in (metrics.dq_violations.labels("t", "r", "drop"), metrics.delta_rows_written.labels("t", "MERGE")):
        counter.inc()
    exported = metrics.names() | SnowflakeMetrics().names()
    dashboard = grafana_dashboard()
    used = set().union(*(referenced_metrics(t["expr"]) for p in dashboard["panels"] for t in p["targets"]))
    assert used and used <= exported, used - exported
    assert {r.metric for r in load_rules(RULES)} <= exported
    exposed = {f.name for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    assert "lakehouse_stream_batch_duration_seconds" in exposed


def test_webhook_receives_alertmanager_payloads() -> None:
    rule = parse_rule({"alert": "Q", "expr": "m > 1", "annotations": {"summary": "m on {{ $labels.t }}"}})
    evaluator = AlertEvaluator([rule])
    fired = evaluator.evaluate([Sample("m", {"t": "x"}, 2)], 0)
    resolved = evaluator.evaluate([Sample("m", {"t": "x"}, 0)], 300)
    with WebhookReceiver().running() as receiver:
        statuses = [deliver(receiver.url, alertmanager_payload(t)) for t in (fired, resolved)]
    assert statuses == [200, 200]
    assert [p["status"] for p in receiver.received] == ["firing", "resolved"]
    assert receiver.received[0]["alerts"][0]["annotations"]["summary"] == "m on x"


def test_structured_logs_are_json_lines(outcome) -> None:  # type: ignore[no-untyped-def]
    lines = (outcome.workdir / "observability" / "pipeline.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    runs = [e for e in entries if e["event"] == "pipeline_run_completed"]
    assert len(runs) == len(_pattern().SCENARIO) and all({"ts", "level", "sim_time_s"} <= e.keys() for e in runs)
