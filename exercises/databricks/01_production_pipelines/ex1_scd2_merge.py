"""Exercise databricks/01.1 · SCD type 2 in one MERGE: close the current version, open the new one.

The customer dimension of databricks/01 keeps history: when a customer's city or segment changes,
the row that was current is closed (valid_to = when the change took effect, is_current = false)
and a new current row is opened. Doing both in ONE MERGE keeps the table consistent at every
version (a reader never sees a customer with no current row, or two).

Your task: merge `snapshot` (one row per customer: customer_id, city, segment, updated_at; the
full customer table as of updated_at) into the Delta table at `dimension` (columns customer_id,
city, segment, valid_from, valid_to, is_current), so that
- a customer whose city or segment changed gets its current row closed (valid_to = the snapshot
  row's updated_at, is_current = false) and a new current row (valid_from = updated_at,
  valid_to = NULL, is_current = true),
- a new customer gets one current row, an unchanged customer is left alone,
- merging the same snapshot again changes nothing.

The trick: stage the changed customers twice, once with their key (that row matches the current
version and closes it) and once with a NULL merge key (it never matches, so it inserts the new
version).

Check it: expert check databricks/01.1
"""

from pyspark.sql import DataFrame, SparkSession


def scd2_merge(spark: SparkSession, dimension: str, snapshot: DataFrame) -> None:
    """Apply one full snapshot of the customers to the SCD type 2 dimension at `dimension`."""
    snapshot.createOrReplaceTempView("scd2_snapshot")
    # TODO: this is SCD type 1: it overwrites the current row and loses the history. Close the
    # current version and open a new one instead, in one MERGE (see the trick in the docstring),
    # and leave unchanged customers alone so that a rerun changes nothing.
    spark.sql(f"""
        MERGE INTO delta.`{dimension}` AS t
        USING scd2_snapshot AS s
        ON t.customer_id = s.customer_id AND t.is_current
        WHEN MATCHED THEN UPDATE SET city = s.city, segment = s.segment, valid_from = s.updated_at
        WHEN NOT MATCHED THEN
          INSERT (customer_id, city, segment, valid_from, valid_to, is_current)
          VALUES (s.customer_id, s.city, s.segment, s.updated_at, NULL, true)
    """)
