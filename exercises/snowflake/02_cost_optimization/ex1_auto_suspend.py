"""Exercise snowflake/02.1 · Pick AUTO_SUSPEND from the query history: replay the bill in SQL.

A warehouse bills per second while it runs, at least 60 seconds each time it resumes, and keeps
running AUTO_SUSPEND seconds after its last query. snowflake/02 replays a month of QUERY_HISTORY
under each candidate setting (gaps and islands in SQL) and picks the setting to recommend. Write
the replay and the choice.

Your task, part 1: `replay_sql(candidates)` returns one query over
SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY (columns WAREHOUSE_NAME, WAREHOUSE_SIZE, START_TIME,
END_TIME, EXECUTION_TIME in ms, ...) with the parameters %(window_start)s and %(window_end)s. For
every warehouse and every setting in the relation `candidates` (one column, AUTO_SUSPEND, in
seconds, possibly under 60) it returns one row, WAREHOUSE_NAME, AUTO_SUSPEND, RESUMES,
BILLED_SECONDS and CREDITS: what the warehouse would have been billed for the same queries under
that setting, where
- only queries that started in [window_start, window_end) and ran on the warehouse count
  (EXECUTION_TIME > 0: a result served from the result cache does not resume a warehouse);
- a query that starts more than AUTO_SUSPEND seconds after every earlier query of its warehouse
  ended resumes the warehouse (queries overlap: an earlier, longer query may still be running
  when a later, shorter one ends);
- each run is billed max(60, last end - resume + AUTO_SUSPEND) seconds at the size's credits per
  hour (SIZE_CREDITS maps WAREHOUSE_SIZE to them).

Part 2: `choose_auto_suspend(replays, interactive, max_resumes_per_day)` gets one replay row per
candidate setting (setting in seconds → {"RESUMES", "BILLED_SECONDS", "CREDITS"}, replayed over
DAYS days) and returns the setting to recommend: for a batch warehouse the cheapest; for an
interactive one (people wait on each cold start) the cheapest whose resumes per day stay within
max_resumes_per_day, or the highest candidate when none does. On a tie in credits, the lower
setting wins.

Check it: expert check snowflake/02.1
"""

DAYS = 30
SIZE_CREDITS = (
    "CASE WAREHOUSE_SIZE WHEN 'X-Small' THEN 1 WHEN 'Small' THEN 2 WHEN 'Medium' THEN 4 "
    "WHEN 'Large' THEN 8 WHEN 'X-Large' THEN 16 WHEN '2X-Large' THEN 32 END"
)


def replay_sql(candidates: str) -> str:
    """Every warehouse's bill under each candidate AUTO_SUSPEND, from the same queries (gaps and islands)."""
    # TODO: three mistakes hide here. Result-cache hits (EXECUTION_TIME = 0) are counted as if they
    # resumed the warehouse; a run is cut by the gap to the previous query's end (LAG), although a
    # longer query started before it may still be running; and a short run is billed less than the
    # 60-second minimum.
    return f"""
WITH busy AS (
  SELECT WAREHOUSE_NAME, START_TIME AS S, END_TIME AS E, {SIZE_CREDITS} AS CREDITS_PER_HOUR
  FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY
  WHERE START_TIME >= %(window_start)s AND START_TIME < %(window_end)s
),
ordered AS (
  SELECT *, LAG(E) OVER (PARTITION BY WAREHOUSE_NAME ORDER BY S, E) AS PREV_END FROM busy
),
runs AS (
  SELECT o.*, c.AUTO_SUSPEND,
    SUM(IFF(PREV_END IS NULL OR DATEDIFF('millisecond', PREV_END, S) > c.AUTO_SUSPEND * 1000, 1, 0))
      OVER (PARTITION BY WAREHOUSE_NAME, c.AUTO_SUSPEND ORDER BY S, E ROWS UNBOUNDED PRECEDING) AS RUN_NO
  FROM ordered AS o CROSS JOIN {candidates} AS c
),
billed AS (
  SELECT WAREHOUSE_NAME, AUTO_SUSPEND, RUN_NO, MAX(CREDITS_PER_HOUR) AS CREDITS_PER_HOUR,
    DATEDIFF('millisecond', MIN(S), MAX(E)) / 1000 + AUTO_SUSPEND AS BILLED_SECONDS
  FROM runs GROUP BY WAREHOUSE_NAME, AUTO_SUSPEND, RUN_NO
)
SELECT WAREHOUSE_NAME, AUTO_SUSPEND, COUNT(*) AS RESUMES, SUM(BILLED_SECONDS) AS BILLED_SECONDS,
  SUM(BILLED_SECONDS * CREDITS_PER_HOUR / 3600) AS CREDITS
FROM billed GROUP BY WAREHOUSE_NAME, AUTO_SUSPEND
"""


def choose_auto_suspend(replays: dict[int, dict[str, float]], interactive: bool, max_resumes_per_day: float) -> int:
    """The cheapest setting; for an interactive warehouse, the cheapest within the cold-start budget."""
    # TODO: the cheapest setting is right for a batch warehouse only. An interactive one must stay
    # within max_resumes_per_day cold starts (or take the highest candidate when no setting does).
    return min(replays, key=lambda setting: (replays[setting]["CREDITS"], setting))
