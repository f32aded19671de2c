"""Exercise databricks/03.2 · Verify in production, and roll back with RESTORE when verification fails.

A build can meet its contract and still be wrong: revenue counted twice has the right schema and
one row per day. databricks/03 therefore verifies a release again after publishing it, on the live
table, against the ledger it must reconcile with, and rolls it back when that fails. Delta makes
the rollback one atomic commit: the version consumers read before the release ("blue") is still
there, so `RESTORE TABLE ... TO VERSION AS OF <blue>` brings it back, and the failed version
("green") stays in the history for the post-mortem.

Your task: `publish_and_verify(spark, release, live, verify)` publishes `release` (a DataFrame:
an audited build of gold_daily_sales) to the Delta table at `live` in one commit, then calls
`verify(version)` with the live version that commit created, which returns the problems found
(an empty list: the release is good). If there are problems, restore the live table to the version
it had before the publish. Return True if the release stays live, False if it was rolled back.
Read versions with `DESCRIBE HISTORY delta.`<live>` LIMIT 1` (its `version` column). The check
publishes a good release, then a release with revenue multiplied, and inspects the table's
content and history after each.

Check it: expert check databricks/03.2
"""

from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession


def live_version(spark: SparkSession, live: str) -> int:
    """The newest version of the Delta table at `live`."""
    return spark.sql(f"DESCRIBE HISTORY delta.`{live}` LIMIT 1").first()["version"]


def publish_and_verify(spark: SparkSession, release: DataFrame, live: str, verify: Callable[[int], list[str]]) -> bool:
    """Publish `release`, verify the live table, and RESTORE the previous version if verification fails."""
    release.write.format("delta").mode("overwrite").save(live)
    problems = verify(live_version(spark, live))
    # TODO: a failed verification is reported, but the wrong numbers stay live until someone
    # repairs them by hand. Remember the live version before the publish (blue) and RESTORE it.
    return not problems
