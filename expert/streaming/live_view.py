"""A terminal dashboard while the stream runs: producer, bronze, silver, Snowflake, latency, revenue.

Why: a learner watching a stream should see it move (records sent, batches committed, the crash,
the restart), not a silent wait. It reads only what the monitor already polled; in --quiet mode
it shows nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from expert.streaming.monitor import StreamMonitor
from expert.streaming.producer import PacedProducer

if TYPE_CHECKING:
    from rich.console import RenderableType

    from expert.runtime.pattern import PatternRun

REFRESH_S = 0.25


def percentile(values: np.ndarray, q: float) -> float:
    """The q-th percentile, or NaN for no values (printed as ∅, never as 0)."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


@contextlib.contextmanager
def live_view(run: PatternRun, monitor: StreamMonitor, producer: PacedProducer) -> Iterator[Callable[[], None]]:
    """Yields `refresh()`, which redraws the view at most every REFRESH_S."""
    if run.narrator.quiet:
        yield lambda: None
        return
    from rich.live import Live

    total = len(producer.deliveries)
    with Live(render(monitor, producer, total), console=run.narrator.console, refresh_per_second=4) as live:
        last = [0.0]

        def refresh() -> None:
            if time.monotonic() - last[0] >= REFRESH_S:
                last[0] = time.monotonic()
                live.update(render(monitor, producer, total))

        yield refresh
        live.update(render(monitor, producer, total))


def render(monitor: StreamMonitor, producer: PacedProducer, total: int) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    committed = monitor.committed()
    delta, snowflake = monitor.latency["delta"], monitor.latency["snowflake"]
    table = Table(title="live · Kafka → Spark → Delta → Snowflake", title_justify="left", pad_edge=False)
    for column in ("stage", "batches", "rows", "detail"):
        table.add_column(column, justify="left" if column in ("stage", "detail") else "right")
    table.add_row("producer → Kafka", "", f"{producer.sent:,}/{total:,}", f"acknowledged {producer.acked:,}")
    table.add_row(
        "bronze / quarantine",
        str(len(monitor.bronze)),
        f"{sum(r for r, _ in monitor.bronze.values()):,} / {sum(q for _, q in monitor.bronze.values()):,}",
        "every record / malformed ones (Spark's observed metrics)",
    )
    table.add_row(
        "silver → Snowflake",
        str(len(committed)),
        f"{sum(a.rows for a in committed.values()):,}",
        f"sink calls that loaded nothing (replays, crashes): {len(monitor.attempts) - len(committed)}",
    )
    peak = max((v for _, v in monitor.revenue), default=0.0) or 1.0
    bars = "\n".join(f"  {m:%H:%M}  {'█' * max(1, int(28 * v / peak))} {v:,.0f}" for m, v in monitor.revenue)
    latency = (
        f"produce→Delta p50 {percentile(delta, 50):,.0f} ms · p95 {percentile(delta, 95):,.0f} ms   "
        f"produce→Snowflake p50 {percentile(snowflake, 50):,.0f} ms · p95 {percentile(snowflake, 95):,.0f} ms"
    )
    return Group(
        Text(monitor.status, style="bold"),
        table,
        Text(latency),
        Text("revenue per minute of event time (latest windows, from Snowflake)\n" + (bars or "  (no purchases yet)")),
    )
