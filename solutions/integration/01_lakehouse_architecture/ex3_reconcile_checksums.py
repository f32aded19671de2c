"""Exercise integration/01.3 · Reconcile lake gold with Snowflake gold: per-day checksums that catch any drift.

Pattern C of integration/01 keeps the sales fact in two systems: Delta (the system of record) and
Snowflake (what BI reads). Comparing them row by row ships every row across systems; instead,
one checksum query runs inside each engine and only its small per-day result travels. A day whose
checksums differ is drilled into and repaired from the lake.

Your task: return the checksum query over the fact table `table`: ONE query text that runs
unchanged in Spark SQL (over the lake's copy) and in Snowflake, grouped by ORDER_DATE, returning
a column `day` and one column per measure, so that
- two equal copies give equal checksums on every day (no false alarm),
- every measure is an exact integer in both engines (money as integer cents, never a float or a
  decimal sum: they are compared as integers, and each engine rounds fractions its own way),
- a copy that drifted by a single row differs on exactly the days that drifted, whatever the drift:
  an amount off by one cent, a quantity changed, a row deleted, a row loaded twice, an ORDER_ID
  changed, an order moved to another day.

Columns of `table`: ORDER_ID, ORDER_DATE, CUSTOMER_ID, QUANTITY, AMOUNT (DECIMAL(18,2)), PAYMENT_STATUS.
Unquoted names work in both engines in any case.

Check it: expert check integration/01.3
"""


def checksum_sql(table: str) -> str:
    """Per-day checksums of the fact in `table`; the same text runs in Spark SQL and Snowflake."""
    return f"""SELECT order_date AS day, count(*) AS row_count, sum(quantity) AS units,
       sum(CAST(amount * 100 AS BIGINT)) AS amount_cents, sum(order_id) AS key_sum
FROM {table} GROUP BY order_date"""
