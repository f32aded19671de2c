"""Observability for the medallion pipeline: Prometheus metrics, alert rules, webhooks, JSON logs.

Why: a pipeline nobody watches fails silently: a source stops delivering and dashboards show
yesterday's numbers as today's. A platform team watches four things: throughput (streaming
progress), what each commit did (Delta history), data quality (expectation failures, null rates)
and timeliness (freshness and volume against a baseline). This module exposes them in the
Prometheus exposition format with `prometheus_client`, evaluates Prometheus alerting rules on
them, and delivers alerts in Alertmanager's webhook format (what PagerDuty, Slack and Opsgenie
integrations consume).

The in-process rule evaluator understands exactly one expression form, a comparison of one metric
(with optional equality label matchers) against a number: `metric{label="v"} > 0.05`. Every rule
shipped here uses that form, so the local evaluation is faithful to Prometheus' (same `for`
semantics: pending first, firing once the condition has held for the duration); anything else is
rejected rather than evaluated approximately. The tests compare it with `promtool test rules`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pyspark.sql.streaming import StreamingQueryListener

from expert.runtime.prometheus import parse_duration

NAMESPACE = "lakehouse"


class PipelineMetrics:
    """Every metric the pipeline exports, in one registry (never the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stream_input_rows = Counter(
            "lakehouse_stream_input_rows", "Rows read by streaming micro-batches", ["query"], registry=r
        )
        self.stream_batches = Counter(
            "lakehouse_stream_batches", "Streaming micro-batches completed", ["query"], registry=r
        )
        self.stream_input_rate = Gauge(
            "lakehouse_stream_input_rows_per_second", "Input rate of the last micro-batch", ["query"], registry=r
        )
        self.stream_processed_rate = Gauge(
            "lakehouse_stream_processed_rows_per_second",
            "Processing rate of the last micro-batch",
            ["query"],
            registry=r,
        )
        self.stream_last_batch_seconds = Gauge(
            "lakehouse_stream_last_batch_duration_seconds", "Duration of the last micro-batch", ["query"], registry=r
        )
        self.stream_batch_seconds = Histogram(
            "lakehouse_stream_batch_duration_seconds",
            "Micro-batch durations",
            ["query"],
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.delta_version = Gauge("lakehouse_delta_table_version", "Latest Delta table version", ["table"], registry=r)
        self.delta_files = Gauge(
            "lakehouse_delta_table_files", "Data files in the current version", ["table"], registry=r
        )
        self.delta_bytes = Gauge("lakehouse_delta_table_bytes", "Size of the current version", ["table"], registry=r)
        self.delta_commits = Counter(
            "lakehouse_delta_commits", "Delta commits seen in history", ["table", "operation"], registry=r
        )
        self.delta_rows_written = Counter(
            "lakehouse_delta_rows_written",
            "Rows inserted or updated by commits (Delta operationMetrics)",
            ["table", "operation"],
            registry=r,
        )
        self.delta_commit_seconds = Gauge(
            "lakehouse_delta_last_commit_duration_seconds",
            "executionTimeMs of the newest commit",
            ["table"],
            registry=r,
        )
        self.dq_rows_checked = Counter(
            "lakehouse_dq_rows_checked", "Rows evaluated by expectations", ["table"], registry=r
        )
        self.dq_violations = Counter(
            "lakehouse_dq_violations", "Expectation violations", ["table", "expectation", "action"], registry=r
        )
        self.dq_failed_ratio = Gauge(
            "lakehouse_dq_failed_ratio", "Share of rows quarantined in the last run", ["table"], registry=r
        )
        self.dq_null_ratio = Gauge(
            "lakehouse_dq_null_ratio", "Share of NULLs in a silver column", ["table", "column"], registry=r
        )
        self.source_rows = Gauge(
            "lakehouse_source_rows_last_run", "Rows a source delivered in the last run", ["source"], registry=r
        )
        self.source_volume_ratio = Gauge(
            "lakehouse_source_volume_ratio",
            "Rows in the last run / baseline (median of earlier runs)",
            ["source"],
            registry=r,
        )
        self.source_freshness = Gauge(
            "lakehouse_source_freshness_seconds", "Time since a source last delivered data", ["source"], registry=r
        )
        self.pipeline_runs = Counter("lakehouse_pipeline_runs", "Pipeline runs completed", registry=r)
        self.pipeline_run_seconds = Gauge(
            "lakehouse_pipeline_last_run_duration_seconds", "Wall time of the last pipeline run", registry=r
        )

    def samples(self) -> list[Sample]:
        """Every current sample, as Prometheus would scrape it."""
        return registry_samples(self.registry)

    def names(self) -> set[str]:
        """Every sample name the registry can expose (declared, even before a labelled child exists)."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
        return {
            family.name + suffix for family in self.registry.collect() for suffix in suffixes.get(family.type, ("",))
        }


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def registry_samples(registry: CollectorRegistry) -> list[Sample]:
    """Every current sample of a registry, as Prometheus would scrape it."""
    return [Sample(s.name, dict(s.labels), float(s.value)) for family in registry.collect() for s in family.samples]


class StreamMetricsListener(StreamingQueryListener):
    """Feeds every streaming progress report into `PipelineMetrics` (Spark's listener bus thread)."""

    def __init__(self, metrics: PipelineMetrics) -> None:
        self.metrics = metrics
        self._lock = threading.Condition()
        self._terminated: set[str] = set()
        self.progress: list[dict[str, Any]] = []

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 (Spark's callback name)
        """Nothing to record until the query reports progress."""

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802 (Spark's callback name)
        p = event.progress
        name = p.name or str(p.id)
        rows = int(p.numInputRows)
        seconds = float(p.batchDuration) / 1000
        if rows > 0:
            self.metrics.stream_input_rows.labels(name).inc(rows)
            self.metrics.stream_batches.labels(name).inc()
            self.metrics.stream_batch_seconds.labels(name).observe(seconds)
            self.metrics.stream_last_batch_seconds.labels(name).set(seconds)
        self.metrics.stream_input_rate.labels(name).set(float(p.inputRowsPerSecond or 0))
        self.metrics.stream_processed_rate.labels(name).set(float(p.processedRowsPerSecond or 0))
        with self._lock:
            self.progress.append({"query": name, "batch": int(p.batchId), "rows": rows, "seconds": seconds})

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802 (Spark's callback name)
        """Idle events carry no rows: nothing to record."""

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802 (Spark's callback name)
        with self._lock:
            self._terminated.add(str(event.runId))
            self._lock.notify_all()

    def wait_until_drained(self, run_ids: Iterable[str], timeout: float = 15.0) -> bool:
        """Wait until the listener has seen these query runs terminate (and so all their progress).

        The listener bus delivers events asynchronously, after `awaitTermination` returns; a run's
        terminated event comes after its last progress event, so this is when metrics are complete.
        """
        wanted = set(run_ids)
        with self._lock:
            return self._lock.wait_for(lambda: wanted <= self._terminated, timeout=timeout)


# ---------------------------------------------------------------------------------- alert rules

EXPRESSION = re.compile(
    r"^\s*(?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(?P<matchers>[^}]*)\})?\s*"
    r"(?P<op>>=|<=|==|!=|>|<)\s*(?P<threshold>-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$"
)
MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"\s*$')
COMPARE = {
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
LABEL_TEMPLATE = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule whose expression is `metric{matchers} OP number`."""

    name: str
    expr: str
    metric: str
    matchers: Mapping[str, str]
    op: str
    threshold: float
    for_seconds: float
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    def matches(self, sample: Sample) -> bool:
        return sample.name == self.metric and all(sample.labels.get(k) == v for k, v in self.matchers.items())


def parse_rule(rule: Mapping[str, Any]) -> AlertRule:
    expr = str(rule["expr"])
    match = EXPRESSION.match(expr)
    if not match:
        raise ValueError(
            f'{rule.get("alert")}: the local evaluator supports only `metric{{label="v"}} OP number`, got {expr!r}'
        )
    matchers: dict[str, str] = {}
    for part in filter(str.strip, (match.group("matchers") or "").split(",")):
        pair = MATCHER.match(part)
        if not pair:
            raise ValueError(f"{rule.get('alert')}: only equality matchers are supported, got {part!r}")
        matchers[pair.group(1)] = pair.group(2)
    return AlertRule(
        name=str(rule["alert"]),
        expr=expr,
        metric=match.group("metric"),
        matchers=matchers,
        op=match.group("op"),
        threshold=float(match.group("threshold")),
        for_seconds=parse_duration(str(rule.get("for", "0s"))),
        labels={str(k): str(v) for k, v in (rule.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (rule.get("annotations") or {}).items()},
    )


def load_rules(path: Path) -> list[AlertRule]:
    """Every alerting rule of a Prometheus rule file (recording rules are not used here)."""
    document = yaml.safe_load(path.read_text())
    return [parse_rule(rule) for group in document["groups"] for rule in group["rules"] if "alert" in rule]


@dataclass
class Alert:
    """One alert instance: a rule and the label set of the series that triggered it."""

    rule: AlertRule
    labels: dict[str, str]
    annotations: dict[str, str]
    active_at: float
    value: float
    state: str = "pending"
    fired_at: float | None = None
    resolved_at: float | None = None

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.labels, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Transition:
    """An alert that started firing or resolved at one evaluation."""

    alert: Alert
    status: str
    at: float


class AlertEvaluator:
    """Prometheus' alerting state machine for simple comparison rules: inactive → pending → firing."""

    def __init__(self, rules: Iterable[AlertRule]) -> None:
        self.rules = list(rules)
        self.active: dict[tuple[str, str], Alert] = {}

    def evaluate(self, samples: Iterable[Sample], now: float) -> list[Transition]:
        samples = list(samples)
        transitions: list[Transition] = []
        seen: set[tuple[str, str]] = set()
        for rule in self.rules:
            for sample in samples:
                if not rule.matches(sample) or not COMPARE[rule.op](sample.value, rule.threshold):
                    continue
                labels = {**sample.labels, **rule.labels, "alertname": rule.name}
                key = (rule.name, json.dumps(labels, sort_keys=True))
                seen.add(key)
                alert = self.active.get(key)
                if alert is None:
                    annotations = {k: render(v, labels) for k, v in rule.annotations.items()}
                    alert = self.active[key] = Alert(rule, labels, annotations, active_at=now, value=sample.value)
                alert.value = sample.value
                if alert.state == "pending" and now - alert.active_at >= rule.for_seconds:
                    alert.state, alert.fired_at = "firing", now
                    transitions.append(Transition(alert, "firing", now))
        for key in [k for k in self.active if k not in seen]:
            alert = self.active.pop(key)
            if alert.state == "firing":
                alert.state, alert.resolved_at = "resolved", now
                transitions.append(Transition(alert, "resolved", now))
        return transitions

    def firing(self) -> list[Alert]:
        return [a for a in self.active.values() if a.state == "firing"]


def render(template: str, labels: Mapping[str, str]) -> str:
    """Expand `{{ $labels.name }}` the way Prometheus' template engine does for these annotations."""
    return LABEL_TEMPLATE.sub(lambda m: labels.get(m.group(1), ""), template)


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def alertmanager_payload(transitions: list[Transition], receiver: str = "lakehouse-oncall") -> dict[str, Any]:
    """A webhook body in Alertmanager's format (version 4), one alert group per call."""
    alerts = [
        {
            "status": t.status,
            "labels": t.alert.labels,
            "annotations": t.alert.annotations,
            "startsAt": _rfc3339(t.alert.fired_at or t.at),
            "endsAt": _rfc3339(t.at) if t.status == "resolved" else "0001-01-01T00:00:00Z",
            "fingerprint": t.alert.fingerprint,
        }
        for t in transitions
    ]
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    return {
        "version": "4",
        "receiver": receiver,
        "status": "firing" if any(t.status == "firing" for t in transitions) else "resolved",
        "groupLabels": {"alertname": common.get("alertname", "")},
        "commonLabels": common,
        "alerts": alerts,
    }


@dataclass
class WebhookReceiver:
    """An HTTP receiver on 127.0.0.1 standing in for PagerDuty/Slack: it records what it is sent."""

    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    @contextmanager
    def running(self) -> Iterator[WebhookReceiver]:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Silence the default stderr access log."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_port}/alerts"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def deliver(url: str, payload: Mapping[str, Any], timeout: float = 5.0) -> int:
    """POST one webhook payload; return the HTTP status (the URL itself is never logged)."""
    import requests

    return requests.post(url, json=payload, timeout=timeout).status_code


# ---------------------------------------------------------------------------------- logs, dashboard


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, default=str, sort_keys=False)


@contextmanager
def json_log(path: Path, name: str = "lakehouse.pipeline") -> Iterator[logging.Logger]:
    """A logger writing JSON lines to `path` for the duration of a block (not propagated)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(name)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    unit: str = "short"
    legend: str = ""


DASHBOARD_PANELS: tuple[Panel, ...] = (
    Panel("Source freshness", "lakehouse_source_freshness_seconds", "s", "{{source}}"),
    Panel("Source volume vs baseline", "lakehouse_source_volume_ratio", "percentunit", "{{source}}"),
    Panel("Rows quarantined (share)", "lakehouse_dq_failed_ratio", "percentunit", "{{table}}"),
    Panel(
        "Expectation violations / 10m",
        "increase(lakehouse_dq_violations_total[10m])",
        "short",
        "{{table}} {{expectation}}",
    ),
    Panel("NULL share in silver columns", "lakehouse_dq_null_ratio", "percentunit", "{{table}}.{{column}}"),
    Panel("Streaming input rows / s", "lakehouse_stream_input_rows_per_second", "rowsps", "{{query}}"),
    Panel("Streaming processed rows / s", "lakehouse_stream_processed_rows_per_second", "rowsps", "{{query}}"),
    Panel(
        "Micro-batch duration p95",
        "histogram_quantile(0.95, sum by (le, query) (rate(lakehouse_stream_batch_duration_seconds_bucket[30m])))",
        "s",
        "{{query}}",
    ),
    Panel(
        "Rows written by Delta commits / 10m",
        "increase(lakehouse_delta_rows_written_total[10m])",
        "short",
        "{{table}} {{operation}}",
    ),
    Panel("Delta data files", "lakehouse_delta_table_files", "short", "{{table}}"),
    Panel("Pipeline run duration", "lakehouse_pipeline_last_run_duration_seconds", "s", "last run"),
    Panel("Snowflake credits, last hour", "snowflake_warehouse_credits_last_hour", "short", "{{warehouse}}"),
    Panel("Snowflake queued share", "snowflake_warehouse_queued_ratio", "percentunit", "{{warehouse}}"),
    Panel("Snowflake failed queries", "snowflake_warehouse_failed_queries", "short", "{{warehouse}}"),
)


def grafana_dashboard(
    title: str = "Lakehouse pipeline", panels: tuple[Panel, ...] = DASHBOARD_PANELS
) -> dict[str, Any]:
    """A Grafana dashboard (JSON model, importable) with one time-series panel per metric view."""
    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus"}],
        "title": title,
        "uid": "lakehouse-pipeline",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "tags": ["lakehouse", "delta", "data-quality"],
        "panels": [
            {
                "id": i + 1,
                "type": "timeseries",
                "title": panel.title,
                "datasource": datasource,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": [{"refId": "A", "datasource": datasource, "expr": panel.expr, "legendFormat": panel.legend}],
            }
            for i, panel in enumerate(panels)
        ],
    }


METRIC_NAME = re.compile(r"\b((?:lakehouse|snowflake)_[a-z0-9_]+)")


def referenced_metrics(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (`…_bucket`/`…_total` kept as written)."""
    return set(METRIC_NAME.findall(expr))
