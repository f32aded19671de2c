"""Exercise snowflake/01.1 · Upsert a change set: QUALIFY dedup, then a MERGE where an older version never wins.

The CDC task of snowflake/01 reads a change set (a stream on an account) and upserts CORE.ORDERS.
The change set is dirty the way real feeds are: the same version delivered twice, several
versions of one order in one batch, and stale replays (an old version arriving after a newer one
was applied). Write the MERGE the task runs.

Your task: return the MERGE statement that upserts CORE.ORDERS from the relation `changes`, so that
- CORE.ORDERS holds exactly one row per ORDER_ID (rows with a NULL ORDER_ID never land),
- each order holds its latest version (the highest UPDATED_AT; ties broken by the highest _SEQ),
- a version older than the one already in CORE.ORDERS never overwrites it,
- running the same MERGE again on the same change set changes nothing.

Columns of `changes`: ORDER_ID, CUSTOMER_ID, PRODUCT_ID, QUANTITY, UNIT_PRICE, AMOUNT, STATUS,
ORDER_TS, UPDATED_AT, _SEQ (load order). CORE.ORDERS has the same columns without _SEQ.

Check it: expert check snowflake/01.1
"""

ORDER_FIELDS = (
    "ORDER_ID",
    "CUSTOMER_ID",
    "PRODUCT_ID",
    "QUANTITY",
    "UNIT_PRICE",
    "AMOUNT",
    "STATUS",
    "ORDER_TS",
    "UPDATED_AT",
)


def merge_orders_sql(changes: str) -> str:
    """The MERGE the CDC task runs on each change set."""
    columns = ", ".join(ORDER_FIELDS)
    updates = ", ".join(f"{c} = s.{c}" for c in ORDER_FIELDS if c != "ORDER_ID")
    values = ", ".join(f"s.{c}" for c in ORDER_FIELDS)
    return f"""MERGE INTO CORE.ORDERS AS t
USING (
  SELECT {columns} FROM {changes}
  WHERE ORDER_ID IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY ORDER_ID ORDER BY UPDATED_AT DESC, _SEQ DESC) = 1
) AS s
ON t.ORDER_ID = s.ORDER_ID
WHEN MATCHED AND s.UPDATED_AT > t.UPDATED_AT THEN UPDATE SET {updates}
WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"""
