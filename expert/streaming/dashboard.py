"""The dashboard's Snowflake views, and an offline HTML snapshot of them after the stream.

Why a file: a learner (or a reviewer of the run) can open the dashboard the pipeline fed without
a BI tool or a network: plotly is bundled inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from expert.runtime.pattern import PatternRun
    from expert.runtime.snowflake import SnowflakeSession
    from expert.streaming.latency import Latency

VIEWS = {
    "REVENUE_PER_MINUTE": "SELECT WINDOW_START, SUM(PURCHASES) AS ORDERS, SUM(REVENUE) AS REVENUE "
    "FROM GOLD_PRODUCT_MINUTE GROUP BY WINDOW_START",
    "TOP_PRODUCTS": "SELECT PRODUCT_ID, SUM(PURCHASES) AS UNITS, SUM(REVENUE) AS REVENUE "
    "FROM GOLD_PRODUCT_MINUTE GROUP BY PRODUCT_ID",
    "FUNNEL": "SELECT SUM(VIEWS) AS VIEWS, SUM(CARTS) AS CARTS, SUM(PURCHASES) AS PURCHASES FROM GOLD_PRODUCT_MINUTE",
}
"""What the dashboard reads, all from the streamed gold table."""


def create_views(session: SnowflakeSession) -> None:
    for name, query in VIEWS.items():
        session.execute(f"CREATE OR REPLACE VIEW {name} AS {query}")


def write_dashboard(run: PatternRun, session: SnowflakeSession, latencies: Sequence[Latency]) -> Path:
    """A self-contained HTML snapshot (plotly bundled inline, so it opens offline) from the Snowflake views."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    per_minute = session.fetch_df("SELECT WINDOW_START, ORDERS, REVENUE FROM REVENUE_PER_MINUTE ORDER BY WINDOW_START")
    top = session.fetch_df(
        "SELECT PRODUCT_ID, UNITS, REVENUE FROM TOP_PRODUCTS ORDER BY REVENUE DESC, PRODUCT_ID LIMIT 10"
    )
    funnel = session.fetch("SELECT VIEWS, CARTS, PURCHASES FROM FUNNEL")[0]
    figure = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            "Revenue per minute (event time)",
            "Top 10 products by revenue",
            "Funnel: views → carts → purchases",
            "Produce → commit latency (ECDF)",
        ),
    )
    figure.add_trace(go.Bar(x=per_minute["WINDOW_START"], y=per_minute["REVENUE"].astype(float), name="revenue"), 1, 1)
    figure.add_trace(
        go.Bar(
            x=top["REVENUE"].astype(float), y=[f"product {p}" for p in top["PRODUCT_ID"]], orientation="h", name="top"
        ),
        1,
        2,
    )
    stages = ["views", "carts", "purchases"]
    figure.add_trace(go.Funnel(y=stages, x=[int(funnel[s.upper()]) for s in stages], name="funnel"), 2, 1)
    for latency in latencies:
        if latency.label.startswith("steady") and len(latency.values):
            values = np.sort(latency.values)
            figure.add_trace(
                go.Scatter(
                    x=values,
                    y=np.arange(1, len(values) + 1) / len(values),
                    mode="lines",
                    name=f"{latency.store}, {latency.label}",
                ),
                2,
                2,
            )
    figure.update_xaxes(title_text="ms", row=2, col=2)
    figure.update_layout(title="Real-time e-commerce dashboard — snapshot after the stream", height=800)
    path = run.workdir / "dashboard.html"
    path.write_text(figure.to_html(full_html=True, include_plotlyjs=True))
    run.figure("dashboard snapshot", path.stat().st_size / 1e6, "MB", how=str(path))
    run.check(
        "the dashboard is one self-contained HTML file with the Snowflake numbers",
        "plotly" in path.read_text()[:200_000] and len(per_minute) > 0,
        f"{len(per_minute)} minutes, {len(top)} products, funnel {funnel}",
    )
    return path
