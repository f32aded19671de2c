"""The offline dashboard writer: one self-contained file, one div per chart, no external script."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from expert.runtime.dashboard import ERROR_PROBE, Chart, charts_from_queries, inspect_dashboard, write_dashboard


def test_a_dashboard_is_one_offline_file_with_every_chart(tmp_path: Path) -> None:
    frames = {
        "line": pd.DataFrame({"x": [1, 2, 1, 2], "series": ["a", "a", "b", "b"], "y": [1, 2, 3, 4]}),
        "bar": pd.DataFrame({"X": ["p", "q"], "Y": [3, 4]}),
        "pie": pd.DataFrame({"X": ["p", "q"], "Y": [1, 1]}),
    }
    charts = [Chart(f"{kind} chart", kind, kind) for kind in frames]
    figures = charts_from_queries(lambda sql: frames[sql].copy(), charts)
    assert [len(f.data) for f in figures] == [2, 1, 1]
    assert [f.data[0].name for f in figures[:1]] == ["a"]
    path = tmp_path / "out" / "dashboard.html"
    size = write_dashboard(path, figures, "Sales <&>", subtitle="from views")
    page = inspect_dashboard(path)
    assert page.size == size == path.stat().st_size
    assert page.charts == 3 and page.external_scripts == 0 and page.self_contained
    text = path.read_text()
    assert "<title>Sales &lt;&amp;&gt;</title>" in text and ERROR_PROBE in text.split("<body>")[0]
    assert all(f'id="chart-{i}"' in text for i in range(3))


def test_a_page_without_charts_is_not_a_dashboard(tmp_path: Path) -> None:
    path = tmp_path / "empty.html"
    write_dashboard(path, [], "Nothing")
    assert not inspect_dashboard(path).self_contained
