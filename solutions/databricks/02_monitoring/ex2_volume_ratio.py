"""Exercise databricks/02.2 · A volume baseline that a stall cannot poison.

A source that delivers a third of its usual rows is a silent incident: nothing fails, gold is just
low. databricks/02 exports, after every scheduled run and per raw source (label `source`):
- `lakehouse_source_rows_last_run`: the rows the source delivered in this run (0 included);
- `lakehouse_source_volume_ratio`: those rows divided by the source's usual volume, its baseline.
The alert LakehouseSourceVolumeDrop fires when the ratio is below 0.5 (docs/runbooks/volume-anomaly.md).

Your task: write `record_volume(metrics, rows, history)`, called once after each run with the
lesson's `PipelineMetrics` (set `metrics.source_rows` and `metrics.source_volume_ratio`, both
labelled by source), `rows` (source → rows delivered in this run) and `history` (source → rows of
every earlier run, oldest first: the same dict every time, which your function keeps up to date).
So that
- the baseline is the median of the earlier runs that delivered data: a stall (runs with 0 rows)
  must not drag the baseline down, and one redelivered batch must not drag it up;
- a source exports no ratio at all until it has a baseline (a made-up ratio of 0 or 1 either
  pages someone for a source that has not started, or hides that nothing is known yet);
- every run still exports the rows, 0 included (a stall shows in the ratio and in the rows).
The check replays hidden runs (noise, a redelivery spike, a stall, a real drop, a source that
starts late) and compares both gauges after every run with its own baseline.

Check it: expert check databricks/02.2
"""

import statistics

from expert.lakehouse.monitoring import PipelineMetrics


def record_volume(metrics: PipelineMetrics, rows: dict[str, int], history: dict[str, list[int]]) -> None:
    """Export one run's rows per source and their ratio to the source's usual volume."""
    for source, delivered in rows.items():
        earlier = history.setdefault(source, [])
        metrics.source_rows.labels(source).set(delivered)
        with_data = [n for n in earlier if n > 0]
        if with_data:
            metrics.source_volume_ratio.labels(source).set(delivered / statistics.median(with_data))
        earlier.append(delivered)
