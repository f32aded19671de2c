"""Exercise databricks/02.3 · Data-quality metrics Prometheus can use: counters, a gauge, the right labels.

databricks/02 turns every silver run's expectation outcome into metrics; the dashboard graphs them
and LakehouseDataQualityRegression pages on them. Each run hands you, per silver table that had a
batch, a `QualityCounts` (expert/lakehouse/quality.py): `rows_in` (rows evaluated),
`violations` (rule name → rows that failed it; every rule evaluated is there, 0 included),
`actions` (rule name → Action: warn, drop or fail) and `dropped` (rows quarantined by drop rules).

Your task: declare the metrics in `quality_metrics(registry)` (prometheus_client, registered in
`registry`, never the global one; return whatever `record_quality` needs) and update them in
`record_quality(metrics, table, counts)`, called once per table and run. The exposition must hold
- `lakehouse_dq_rows_checked_total{table}`: rows evaluated, summed over every run;
- `lakehouse_dq_violations_total{table, expectation, action}`: violations per rule, summed over
  every run, with a series for every rule from its first run on (at 0 when nothing failed);
- `lakehouse_dq_failed_ratio{table}`: the share (0 to 1) of the table's rows quarantined in its
  last run;
and `promtool check metrics` must find nothing to lint in it (types, names, help texts).
The check records hidden runs and scrapes the registry after each one.

Check it: expert check databricks/02.3
"""

from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from expert.lakehouse.quality import QualityCounts


def quality_metrics(registry: CollectorRegistry) -> dict[str, Any]:
    """Declare the data-quality metrics once, in `registry`."""
    # TODO: a value that only grows (rows checked, violations) is a counter: Prometheus' rate() and
    # increase() need it, and a gauge named `..._total` is what promtool's lint reports first.
    return {
        "rows_checked": Gauge(
            "lakehouse_dq_rows_checked_total", "Rows evaluated by expectations", ["table"], registry=registry
        ),
        "violations": Gauge(
            "lakehouse_dq_violations_total",
            "Rows that failed an expectation",
            ["table", "expectation", "action"],
            registry=registry,
        ),
        "failed_ratio": Gauge(
            "lakehouse_dq_failed_ratio", "Share of rows quarantined in the last run", ["table"], registry=registry
        ),
    }


def record_quality(metrics: dict[str, Any], table: str, counts: QualityCounts) -> None:
    """Add one run's expectation outcome for `table` to the metrics."""
    # TODO: these keep only this run's numbers, and a rule gets a series only on its first failure.
    metrics["rows_checked"].labels(table).set(counts.rows_in)
    for rule, violations in counts.violations.items():
        if violations:
            metrics["violations"].labels(table, rule, counts.actions[rule].value).set(violations)
    metrics["failed_ratio"].labels(table).set(counts.dropped / counts.rows_in)
