"""Exercise snowflake/02.3 · A resource monitor's triggers: on which day of its cycle would each fire?

A resource monitor caps the credits a fleet of warehouses may use in a cycle (here monthly): at
each trigger (a percentage of the quota) it notifies, suspends, or suspends immediately. Before
setting a quota, snowflake/02 replays the credit history against it: if SUSPEND would have fired
on day 12, the quota or the settings are wrong. Write that replay.

Your task: `trigger_days_sql(triggers)` returns one query over
SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY (hourly rows: START_TIME, END_TIME,
WAREHOUSE_NAME, CREDITS_USED_COMPUTE, CREDITS_USED_CLOUD_SERVICES, CREDITS_USED) with the
parameters %(cycle_start)s (midnight of the cycle's first day) and %(quota)s (credits). For every
row of the relation `triggers` (PERCENT, ACTION) it returns one row, PERCENT and FIRES_ON_DAY:
the day of the cycle (1 = the day of cycle_start) on which the credits used since cycle_start
first reach quota x PERCENT / 100, or NULL when they never do in the history. Where
- a monitor counts CREDITS_USED: compute and the cloud services that support it;
- only hours from cycle_start on count (what came before belongs to the previous cycle);
- days are calendar days from cycle_start: a day with no usage at all (no metering rows) is still
  a day of the cycle;
- every trigger gets its row, whether it fires or not.

Check it: expert check snowflake/02.3
"""


def trigger_days_sql(triggers: str) -> str:
    """The day each trigger would fire, from the hourly credit history of this cycle."""
    return f"""
WITH used AS (
  SELECT START_TIME,
    SUM(CREDITS_USED) OVER (ORDER BY START_TIME ROWS UNBOUNDED PRECEDING) AS USED_SO_FAR
  FROM (
    SELECT START_TIME, SUM(CREDITS_USED) AS CREDITS_USED
    FROM SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY
    WHERE START_TIME >= %(cycle_start)s
    GROUP BY START_TIME
  )
)
SELECT t.PERCENT, MIN(DATEDIFF('day', %(cycle_start)s::TIMESTAMP_NTZ, u.START_TIME)) + 1 AS FIRES_ON_DAY
FROM {triggers} AS t
LEFT JOIN used AS u ON u.USED_SO_FAR >= %(quota)s * t.PERCENT / 100
GROUP BY t.PERCENT
"""
