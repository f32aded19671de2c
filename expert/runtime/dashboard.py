"""One offline HTML dashboard writer: plotly figures in one self-contained file.

Why one writer: a dashboard a pattern leaves behind must open anywhere, without a network (no CDN
script), and must be checkable by a test. Every pattern that renders charts writes them here:
plotly.js is inlined once, each figure gets its own `<div id="chart-N">`, and a tiny script counts
script errors into `<html data-js-errors>`, a render-health marker a headless browser can read.

    size = write_dashboard(workdir / "dashboard.html", [fig1, fig2], "Sales", subtitle="…")
    page = inspect_dashboard(workdir / "dashboard.html")   # page.charts, page.self_contained
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ERROR_PROBE = (
    "<script>document.documentElement.dataset.jsErrors='0';"
    "window.addEventListener('error',function(){var d=document.documentElement.dataset;"
    "d.jsErrors=String(Number(d.jsErrors)+1);});</script>"
)
"""Counts script errors into `<html data-js-errors>`."""
CHART_MARKER = 'class="plotly-graph-div"'


def write_dashboard(path: Path, figures: Sequence[Any], title: str, *, subtitle: str = "") -> int:
    """Write `figures` (plotly figures, one chart each) as one offline HTML page; returns its size in bytes."""
    charts = "\n".join(
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"chart-{i}") for i, fig in enumerate(figures)
    )
    heading = html.escape(title)
    lead = f"<p>{html.escape(subtitle)}</p>" if subtitle else ""
    page = (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{heading}</title>{ERROR_PROBE}</head>\n"
        f"<body><h1>{heading}</h1>{lead}\n{charts}\n</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path.stat().st_size


@dataclass(frozen=True)
class DashboardPage:
    """What a written dashboard holds, read back from the file."""

    size: int
    charts: int
    external_scripts: int

    @property
    def self_contained(self) -> bool:
        return self.charts > 0 and self.external_scripts == 0


def inspect_dashboard(path: Path) -> DashboardPage:
    """Count the charts and the scripts loaded from elsewhere (a page that needs a network has some)."""
    text = path.read_text(encoding="utf-8")
    return DashboardPage(path.stat().st_size, text.count(CHART_MARKER), text.count("<script src="))


@dataclass(frozen=True)
class Chart:
    """One chart drawn from one query: the query returns columns `X` and `Y` (and `SERIES` for a line per series)."""

    title: str
    kind: str
    sql: str


def charts_from_queries(fetch_df: Any, charts: Sequence[Chart]) -> list[Any]:
    """A plotly figure per chart, from what `fetch_df(sql)` returns (e.g. `SnowflakeSession.fetch_df`).

    Kinds: `line` (one trace per `SERIES` value, or one trace), `bar`, `pie` (X labels, Y values).
    """
    import plotly.graph_objects as go

    figures = []
    for chart in charts:
        frame = fetch_df(chart.sql)
        frame.columns = [str(c).upper() for c in frame.columns]
        if chart.kind == "pie":
            traces = [go.Pie(labels=frame["X"], values=frame["Y"].astype(float))]
        elif chart.kind == "bar":
            traces = [go.Bar(x=frame["X"], y=frame["Y"].astype(float))]
        elif "SERIES" in frame.columns:
            traces = [
                go.Scatter(x=part["X"], y=part["Y"].astype(float), name=str(name))
                for name, part in frame.groupby("SERIES", sort=False)
            ]
        else:
            traces = [go.Scatter(x=frame["X"], y=frame["Y"].astype(float))]
        figure = go.Figure(traces)
        figure.update_layout(title=chart.title)
        figures.append(figure)
    return figures
