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
    # TODO: this is the naive latest-value join: each customer's newest snapshot, whatever the
    # label's time, so most labels see the future. Join on customer_id AND feature_ts <= label_ts,
    # keep the latest candidate per spine row (customer_id, label_ts), and left-join the result back
    # to the spine so that no row is lost.
    newest = Window.partitionBy("customer_id").orderBy(F.col("feature_ts").desc())
    latest = feature_rows.withColumn("_rank", F.row_number().over(newest)).where("_rank = 1").drop("_rank")
    return spine.join(latest.withColumnRenamed("feature_ts", f"{prefix}_feature_ts"), "customer_id", "left")
