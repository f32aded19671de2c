"""Exercise snowflake/02.2 · Right-size from the evidence: spill means bigger, queueing means more clusters.

Each symptom in QUERY_HISTORY has its own remedy. Queries that spill to remote storage need more
memory: run those jobs one size up. Queries that queue behind others need more concurrency, not a
bigger size: add clusters. A warehouse that is mostly idle while billed, with neither symptom, can
go one size down. snowflake/02 measures the symptoms in SQL and applies one rule per symptom.
Write the measurement and the rule.

Your task, part 1: `sizing_evidence_sql()` returns one query over
SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY with the parameters %(window_start)s and %(window_end)s,
one row per WAREHOUSE_NAME, with
- QUERIES: the queries that started in [window_start, window_end) and ran on the warehouse
  (EXECUTION_TIME > 0; results served from the result cache did not run, and are not counted
  anywhere below);
- QUEUED_SHARE: the share of those queries that waited in the queue (QUEUED_OVERLOAD_TIME > 0);
- REMOTE_SPILL_SHARE: the share of their execution time (EXECUTION_TIME) spent in queries that
  spilled to remote storage (BYTES_SPILLED_TO_REMOTE_STORAGE > 0): weighted by time, because a
  few long jobs that spill can hold most of a warehouse's hours.

Part 2: `recommend(evidence, utilization)` gets one such row (a dict keyed by those column names)
and the warehouse's utilization (busy seconds / billed seconds) and returns one of REMEDIES:
- REMEDIES[0] when REMOTE_SPILL_SHARE >= SPILL_SIZE_UP;
- otherwise REMEDIES[1] when QUEUED_SHARE >= QUEUED_ADD_CLUSTERS;
- otherwise REMEDIES[2] when nothing queued, nothing spilled and utilization < IDLE_SIZE_DOWN;
- otherwise REMEDIES[3].

Check it: expert check snowflake/02.2
"""

SPILL_SIZE_UP = 0.10
QUEUED_ADD_CLUSTERS = 0.01
IDLE_SIZE_DOWN = 0.10
REMEDIES = ("run the spilling jobs one size up", "add clusters (multi-cluster)", "size down", "keep")


def sizing_evidence_sql() -> str:
    """The symptoms per warehouse, over the queries that ran on it."""
    return """
SELECT WAREHOUSE_NAME, COUNT(*) AS QUERIES,
  COUNT_IF(QUEUED_OVERLOAD_TIME > 0) / COUNT(*) AS QUEUED_SHARE,
  SUM(IFF(BYTES_SPILLED_TO_REMOTE_STORAGE > 0, EXECUTION_TIME, 0)) / SUM(EXECUTION_TIME) AS REMOTE_SPILL_SHARE
FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY
WHERE EXECUTION_TIME > 0 AND START_TIME >= %(window_start)s AND START_TIME < %(window_end)s
GROUP BY WAREHOUSE_NAME
"""


def recommend(evidence: dict[str, float], utilization: float) -> str:
    """One remedy per symptom: memory for spills, concurrency for queueing, a smaller size for idleness."""
    spill, queued = float(evidence["REMOTE_SPILL_SHARE"] or 0), float(evidence["QUEUED_SHARE"] or 0)
    if spill >= SPILL_SIZE_UP:
        return REMEDIES[0]
    if queued >= QUEUED_ADD_CLUSTERS:
        return REMEDIES[1]
    if queued == 0 and spill == 0 and utilization < IDLE_SIZE_DOWN:
        return REMEDIES[2]
    return REMEDIES[3]
