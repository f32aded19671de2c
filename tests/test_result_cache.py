"""Snowflake's result-cache rules on a query history: which misses were avoidable, and why."""

from __future__ import annotations

import pandas as pd

from expert.runtime.result_cache import result_cache_misses
from expert.runtime.usage_history import BI_TILES, HOURLY_ETL, LOCAL_ORIGIN


def test_result_cache_rules() -> None:
    tile, live = BI_TILES[0], BI_TILES[3]
    rows = [
        ("q1", tile.text, "SELECT", 0),
        ("q2", tile.variant, "SELECT", 60),  # same query, other spelling: avoidable, "text differs"
        ("q3", live.text, "SELECT", 120),
        ("q4", live.text, "SELECT", 180),  # CURRENT_TIMESTAMP(): never reused, "run-time function"
        ("m1", HOURLY_ETL[2].text, "MERGE", 240),  # writes ORDERS: older results are stale
        ("q5", tile.variant, "SELECT", 400),  # stale: not avoidable
        ("q6", tile.text, "SELECT", 400 + 25 * 3600),  # older than 24 h: not avoidable
    ]
    history = pd.DataFrame(
        {
            "QUERY_ID": [r[0] for r in rows],
            "QUERY_TEXT": [r[1] for r in rows],
            "QUERY_TYPE": [r[2] for r in rows],
            "ROLE_NAME": "BI_READER",
            "START_TIME": [LOCAL_ORIGIN + pd.Timedelta(seconds=r[3]) for r in rows],
            "END_TIME": [LOCAL_ORIGIN + pd.Timedelta(seconds=r[3] + 5) for r in rows],
            "EXECUTION_TIME": 5000,
        }
    )
    misses = {m.query_id: m.why for m in result_cache_misses(history, LOCAL_ORIGIN)}
    assert misses == {"q2": "text differs", "q4": "run-time function"}
    other_role = history.assign(ROLE_NAME=["A", "B", "A", "A", "A", "A", "A"])
    assert {m.query_id for m in result_cache_misses(other_role, LOCAL_ORIGIN)} == {"q4"}, "results are per role"
