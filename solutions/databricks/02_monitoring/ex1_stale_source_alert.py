"""Exercise databricks/02.1 · An alert that pages when a source stalls, and resolves when data flows again.

The expensive failure of databricks/02 is the quiet one: a source stops delivering and gold keeps
showing yesterday's numbers. The pipeline exports, per raw source (label `source`: clickstream,
orders, customers):
- `lakehouse_source_freshness_seconds`: seconds since the source last delivered rows to bronze,
  computed at every scrape (it keeps growing between runs, and when no run happens at all);
- `lakehouse_source_rows_last_run`: rows the source delivered in the last pipeline run (it changes
  only when a run finishes);
and `lakehouse_pipeline_runs_total`, the runs completed. Runs are 10 minutes apart.

Your task: return the Prometheus alerting rule (one entry of `groups[].rules` in
expert/databricks/observability/alert_rules.yml, as a mapping) that pages on-call as the runbook
docs/runbooks/source-stale.md says: when a source's newest data is more than 10 minutes old, and
has been for 5 minutes. So that
- it is named LakehouseSourceStale, carries the label severity: page, and links to its runbook in
  annotations.runbook_url (the path from the repository root);
- it fires once per stalled source, with that source's `source` label (the other sources stay
  quiet), and also when the pipeline itself stops running;
- a run that finishes a few minutes late pages nobody;
- it resolves at the first evaluation after the source delivers again.
The check replays your rule through Prometheus' rule engine (`promtool test rules`, evaluations
every minute) on schedules you have not seen, and compares the alerts at every evaluation.

Check it: expert check databricks/02.1
"""

from typing import Any


def stale_source_rule() -> dict[str, Any]:
    """The LakehouseSourceStale alerting rule, as it would appear in alert_rules.yml."""
    return {
        "alert": "LakehouseSourceStale",
        "expr": "lakehouse_source_freshness_seconds > 600",
        "for": "5m",
        "labels": {"severity": "page", "team": "data-platform"},
        "annotations": {
            "summary": "No new data from {{ $labels.source }} for more than 10 minutes",
            "runbook_url": "docs/runbooks/source-stale.md",
        },
    }
