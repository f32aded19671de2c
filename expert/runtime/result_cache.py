"""Snowflake's result-cache rules applied to a query history: which executions a cached result could have served.

Why: a result served from the result cache costs no warehouse time. Snowflake reuses a result
for 24 hours when the new query has the same text and role, nothing it read has changed since,
and it calls no run-time function such as CURRENT_TIMESTAMP(). Dashboards miss it all the time:
two BI tools spell one query differently, or a tile bounds its window with CURRENT_TIMESTAMP().
`result_cache_misses` finds the executions an equivalent, still-valid result existed for (same
normalized text and role, no write to any table it read since), and says why each missed: these
are the misses one query template, with the time bound as a literal, would turn into hits.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from expert.runtime.query_text import normalized, tables_read, written_table
from expert.runtime.usage_history import seconds_since

RESULT_REUSE_SECONDS = 24 * 3600
"""A result is reused for 24 hours, for the same text and role, if nothing it read has changed."""
RUNTIME_FUNCTION = re.compile(r"CURRENT_TIMESTAMP\(\)", re.IGNORECASE)
"""A run-time function in a query's text: Snowflake never reuses such a result."""


@dataclass(frozen=True)
class CacheMiss:
    """An execution a cached result could have served, and why the cache missed it."""

    query_id: str
    why: str
    execution_seconds: float


def result_cache_misses(history: pd.DataFrame, origin: datetime) -> list[CacheMiss]:
    """Queries that ran on a warehouse although an equivalent result from the last 24 h was still valid.

    `history` has QUERY_HISTORY's QUERY_ID, QUERY_TEXT, QUERY_TYPE, ROLE_NAME, START_TIME, END_TIME
    and EXECUTION_TIME (0 for a query the cache served); times are measured from `origin`.
    """
    misses: list[CacheMiss] = []
    last_result: dict[tuple[str, str], tuple[float, str]] = {}
    last_write: dict[str, float] = defaultdict(lambda: -math.inf)
    parsed: dict[str, tuple[str, frozenset[str], str | None]] = {}
    frame = history.sort_values("START_TIME", kind="stable")
    starts = seconds_since(frame["START_TIME"], origin)
    ends = seconds_since(frame["END_TIME"], origin)
    for row, start, end in zip(frame.itertuples(index=False), starts, ends, strict=True):
        text = str(row.QUERY_TEXT)
        if text not in parsed:
            stable = RUNTIME_FUNCTION.sub("CURRENT_DATE()", text)
            parsed[text] = (normalized(stable), frozenset(tables_read(text)), written_table(text))
        key_text, tables, writes = parsed[text]
        if writes:
            last_write[writes] = max(last_write[writes], end)
            continue
        if row.QUERY_TYPE != "SELECT" or row.EXECUTION_TIME <= 0:
            continue
        key = (key_text, str(row.ROLE_NAME))
        previous = last_result.get(key)
        valid = (
            previous is not None
            and start - previous[0] < RESULT_REUSE_SECONDS
            and all(last_write[t] < previous[0] for t in tables)
        )
        if valid and previous is not None:
            if RUNTIME_FUNCTION.search(text):
                misses.append(CacheMiss(str(row.QUERY_ID), "run-time function", row.EXECUTION_TIME / 1000))
            elif previous[1] != text:
                misses.append(CacheMiss(str(row.QUERY_ID), "text differs", row.EXECUTION_TIME / 1000))
        last_result[key] = (start, text)
    return misses
