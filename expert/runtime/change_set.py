"""Where a CDC task reads its changes: a Snowflake stream on an account, an offset-driven change set locally.

Why: on an account, a task's MERGE reads a stream, and the stream's offset advances in the same
transaction as the MERGE, so a change is consumed exactly once. The local engine (fakesnow) has no
streams, so locally a `ChangeSet` plays the stream: every row appended to the source table carries
a sequence number, the consumer's offset is a row of an offsets table, and the MERGE reads the rows
past the offset. The offset is committed after the MERGE (fakesnow 0.12.1 cannot run MERGE inside
an explicit transaction), so a run killed in between re-delivers its changes: at-least-once
delivery, which a MERGE that never applies the same version twice makes exactly-once in effect. Locally its statements are marked as the stand-in's (`feature`), so the
saved cloud worksheet leaves them out: the account runs the stream and the task instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from expert.runtime.snowflake import SnowflakeSession


@dataclass
class ChangeSet:
    """The changes appended to `table` that `consumer` has not consumed yet."""

    session: SnowflakeSession
    table: str
    """The append-only source table; locally each row carries its offset in `sequence`."""
    stream: str
    """The stream on `table` (read on an account)."""
    offsets: str
    """The local offsets table (CONSUMER, LAST_SEQ), created on first use."""
    consumer: str
    sequence: str = "_SEQ"
    feature: str = "a stream + task (CDC)"
    """What the local twin stands in for: its statements are marked so, and left out of the cloud plan."""
    _offsets_ready: bool = field(default=False, init=False, repr=False)

    @contextlib.contextmanager
    def _twin(self) -> Iterator[None]:
        """Locally, mark the block's statements as the stand-in's; on an account they are the real thing."""
        if self.session.is_local:
            with self.session.stand_in(self.feature):
                yield
        else:
            yield

    def offset(self) -> int:
        """The last sequence number this consumer committed (0 before its first commit)."""
        if not self._offsets_ready:
            self.session.execute(f"CREATE TABLE IF NOT EXISTS {self.offsets} (CONSUMER VARCHAR, LAST_SEQ NUMBER)")
            self._offsets_ready = True
        value = self.session.scalar(f"SELECT MAX(LAST_SEQ) FROM {self.offsets} WHERE CONSUMER = %s", (self.consumer,))
        return int(value or 0)

    def pending(self) -> tuple[str, int, int]:
        """The relation to read, how many rows it delivers now, and the offset it ends at (reading does not consume)."""
        if not self.session.is_local:
            return self.stream, int(self.session.scalar(f"SELECT COUNT(*) FROM {self.stream}")), 0
        with self._twin():
            high = int(self.session.scalar(f"SELECT COALESCE(MAX({self.sequence}), 0) FROM {self.table}"))
            relation = (
                f"(SELECT * FROM {self.table} WHERE {self.sequence} > {self.offset()} AND {self.sequence} <= {high})"
            )
            return relation, int(self.session.scalar(f"SELECT COUNT(*) FROM {relation}")), high

    def consume(self, merge: Callable[[str], str], *, crash_before_offset_commit: bool = False) -> tuple[int, int, str]:
        """Run the task body once: `merge(relation)` over the pending changes, then commit the offset.

        Returns (rows delivered, rows the MERGE changed, the MERGE's query id).
        `crash_before_offset_commit` stops after the MERGE, as a task killed at that point would.
        """
        relation, delivered, high = self.pending()
        with self._twin():
            cursor = self.session.execute(merge(relation))
            changed = sum(int(v or 0) for v in (cursor.fetchone() or ()))
            query_id = str(getattr(cursor, "sfqid", "") or "")
            if self.session.is_local and not crash_before_offset_commit:
                self.session.execute("BEGIN")
                self.session.execute(f"DELETE FROM {self.offsets} WHERE CONSUMER = %s", (self.consumer,))
                self.session.execute(f"INSERT INTO {self.offsets} VALUES (%s, %s)", (self.consumer, high))
                self.session.execute("COMMIT")
        return delivered, changed, query_id
