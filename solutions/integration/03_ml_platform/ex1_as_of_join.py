"""Exercise integration/03.1 · The point-in-time (as-of) feature join: never learn from the future.

A training set pairs each label with the features the model WOULD have seen at prediction time.
The feature store of integration/03 keeps every snapshot of a feature table, keyed by
(customer_id, feature_ts); a customer has many snapshots and many labels. Joining each customer's
newest snapshot ("the latest value") uses features observed after the label's moment: the model
looks brilliant offline and fails in production. This is what Databricks Feature Engineering does
for a FeatureLookup with a `timestamp_lookup_key`; here you write it out.

Your task: join `feature_rows` (customer_id, feature_ts, feature columns) to `spine` (customer_id,
label_ts, and other columns such as the label) so that
- every spine row comes out exactly once, with all its columns unchanged (a left join: a row with
  no snapshot at or before its label_ts is kept, its feature columns NULL),
- each row carries the feature row with the latest feature_ts at or before its label_ts
  (feature_ts <= label_ts: a snapshot taken at the label's very instant is usable),
- the chosen snapshot's timestamp is kept as the column `{prefix}_feature_ts`,
- no feature is ever observed after its label's timestamp.
A customer has several labels at different times: each label gets its own snapshot.

Check it: expert check integration/03.1
"""

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def as_of_join(spine: DataFrame, feature_rows: DataFrame, prefix: str) -> DataFrame:
    """Each spine row with the latest feature row observed at or before its label_ts."""
    ts_column = f"{prefix}_feature_ts"
    renamed = feature_rows.withColumnRenamed("feature_ts", ts_column).withColumnRenamed("customer_id", "f_customer")
    candidates = spine.select("customer_id", "label_ts").join(
        renamed, (F.col("f_customer") == F.col("customer_id")) & (F.col(ts_column) <= F.col("label_ts"))
    )
    latest = Window.partitionBy("customer_id", "label_ts").orderBy(F.col(ts_column).desc())
    picked = candidates.withColumn("_rank", F.row_number().over(latest)).where("_rank = 1").drop("_rank", "f_customer")
    return spine.join(picked, ["customer_id", "label_ts"], "left")
