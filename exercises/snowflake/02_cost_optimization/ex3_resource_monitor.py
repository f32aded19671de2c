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
    # TODO: four things are off. It counts compute credits only; it counts hours from before the cycle
    # started; it numbers the days that had usage (a day without any usage shifts every later day);
    # and a trigger that never fires loses its row (an inner join).
    return f"""
WITH daily AS (
  SELECT TO_DATE(START_TIME) AS DAY, SUM(CREDITS_USED_COMPUTE) AS CREDITS
  FROM SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY
  GROUP BY 1
),
used AS (
  SELECT ROW_NUMBER() OVER (ORDER BY DAY) AS DAY_OF_CYCLE,
    SUM(CREDITS) OVER (ORDER BY DAY ROWS UNBOUNDED PRECEDING) AS USED_SO_FAR
  FROM daily
)
SELECT t.PERCENT, MIN(u.DAY_OF_CYCLE) AS FIRES_ON_DAY
FROM {triggers} AS t
JOIN used AS u ON u.USED_SO_FAR >= %(quota)s * t.PERCENT / 100
GROUP BY t.PERCENT
"""
