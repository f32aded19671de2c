"""Exercise databricks/03.1 · Write-audit-publish: only a build that meets its contract goes live.

databricks/03 promotes releases of the gold tables with write-audit-publish: each release is built
apart from production, audited against its data contract (deploy/contracts/gold_daily_sales.odcs.yaml),
and published only if the audit passes, in one commit, so that consumers see the old table or the
new one, never a broken or half-written one.

Your task: `promote(spark, release, live)` audits `release` (a DataFrame: the release's build of
gold_daily_sales) against the contract below, and if it passes, replaces the content of the Delta
table at `live` with it in one commit (no DELETE then INSERT); it returns whether it published.
A release that fails the audit changes nothing at all. The contract:
- the columns are exactly order_date DATE, orders BIGINT, revenue DECIMAL(18,2), customers BIGINT
  (compare names and Spark types: `{f.name: f.dataType.simpleString() for f in df.schema.fields}`);
- at least one row; no column is ever NULL; order_date is unique (one row per day);
- orders >= 1, revenue >= 0, and 1 <= customers <= orders on every row.
Remember that a comparison with NULL is NULL, neither true nor false: count the rows that break a
rule, and a NULL must count as breaking it. The check promotes a good release, hidden bad ones
(each breaks one rule), then another good one, and looks at the live table after each.

Check it: expert check databricks/03.1
"""

from pyspark.sql import DataFrame, SparkSession

CONTRACT_SCHEMA = {"order_date": "date", "orders": "bigint", "revenue": "decimal(18,2)", "customers": "bigint"}
ROW_RULES = "orders >= 1 AND revenue >= 0 AND customers >= 1 AND customers <= orders"


def audit(release: DataFrame) -> list[str]:
    """Every way `release` breaks the gold_daily_sales contract (empty: it meets it)."""
    # TODO: this audit stops at the schema and an empty build. A day twice, a NULL, a negative revenue
    # or more customers than orders pass it and go live. Check every rule of the contract, in one
    # aggregation, counting a NULL as a broken rule.
    schema = {f.name: f.dataType.simpleString() for f in release.schema.fields}
    if schema != CONTRACT_SCHEMA:
        return [f"schema {schema} is not {CONTRACT_SCHEMA}"]
    return [] if release.count() else ["no rows"]


def promote(spark: SparkSession, release: DataFrame, live: str) -> bool:
    """Publish `release` to the live table if it meets its contract; return whether it was published."""
    if audit(release):
        return False
    release.write.format("delta").mode("overwrite").save(live)
    return True
