"""Exercise integration/02.1 · An idempotent foreachBatch sink: a replayed batch is written once.

A streaming query commits its progress to the checkpoint after its sink returns. If the process
dies in between, the restarted query runs the same batch again, with the same batch id, and a
plain append writes its rows twice. integration/02's sinks make every Delta write idempotent with
the writer options Delta provides for exactly this: `txnAppId` (who writes: one id per query) and
`txnVersion` (which batch: the batch id). Delta records the highest version committed per app id
in the table's log and skips a write whose version it has already seen.

Your task: write `write_batch` so that the stream appends each micro-batch to the Delta table at
`table` exactly once, whatever the number of replays, and so that two queries (two `app_id`s)
writing to the same table with the same batch ids never skip each other's batches.

The check streams hidden files through your sink, crashes the query right after your sink
returned for one batch (before the checkpoint records it), restarts the query from its checkpoint
and counts the copies of every event in the table and the app ids and versions in the Delta log.

Check it: expert check integration/02.1
"""

from pyspark.sql import DataFrame


def write_batch(batch: DataFrame, batch_id: int, table: str, app_id: str) -> None:
    """Append one micro-batch of the stream `app_id` to the Delta table at `table`, once."""
    # TODO: a replayed batch is appended again. Tell Delta who writes (app_id) and which batch
    # this is (batch_id), so that it skips a version it has already committed for this app id.
    batch.write.format("delta").mode("append").save(table)
