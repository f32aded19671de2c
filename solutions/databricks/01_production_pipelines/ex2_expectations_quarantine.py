"""Exercise databricks/01.2 · Expectations with a quarantine: every row kept or quarantined, none lost.

Silver is a promise to every consumer, so databricks/01 checks each bronze micro-batch against
named expectations before it is merged. A row that fails a drop expectation is not thrown away:
it goes to the quarantine table with the name of the rule it failed, so that rows in = rows kept
+ rows quarantined, and the quarantine says, per rule, what broke. (The lesson's
`expert.lakehouse.quality.apply_expectations` also does warn and fail rules; here every rule drops.)

Your task: `split_by_expectations(batch, rules)` takes a bronze micro-batch (any columns; the
check's has event_id, customer_id, event_type, price, event_ts, _corrupt_record, _source_file)
and the drop rules as (name, SQL condition a good row satisfies), e.g.
("price_in_range", "price > 0 AND price < 10000"). It returns (kept, quarantined):
- kept: the rows that satisfy every rule, with exactly the batch's columns;
- quarantined: every other row, with the batch's columns plus `failed_rule`: the name of the first
  rule, in the order given, that the row fails;
- a condition that evaluates to NULL fails the rule (a NULL price is not "in range"): SQL's WHERE
  keeps only true rows, so `WHERE condition` and `WHERE NOT condition` both leave it out.
The check splits two hidden batches (malformed lines, NULL and out-of-range values, rows that
break two rules) with the rules in two different orders, and compares every row's fate with its own.

Check it: expert check databricks/01.2
"""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def split_by_expectations(batch: DataFrame, rules: list[tuple[str, str]]) -> tuple[DataFrame, DataFrame]:
    """Split a micro-batch into the rows silver keeps and the rows the quarantine gets, with their rule."""
    first_failed = F.coalesce(
        *[F.when(~F.coalesce(F.expr(condition), F.lit(False)), F.lit(name)) for name, condition in rules]
    )
    tagged = batch.withColumn("failed_rule", first_failed)
    return tagged.where("failed_rule IS NULL").drop("failed_rule"), tagged.where("failed_rule IS NOT NULL")
