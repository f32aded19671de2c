"""The local twin of a stream: rows past a committed offset, re-delivered after a crash before the commit."""

from __future__ import annotations

from expert.runtime.change_set import ChangeSet


def _merge(relation: str) -> str:
    return (
        f"MERGE INTO T AS t USING (SELECT ID, V FROM {relation}) AS s ON t.ID = s.ID "
        "WHEN MATCHED AND s.V <> t.V THEN UPDATE SET V = s.V WHEN NOT MATCHED THEN INSERT (ID, V) VALUES (s.ID, s.V)"
    )


def test_offsets_deliver_each_row_once_and_a_crash_redelivers(snowflake_local) -> None:  # type: ignore[no-untyped-def]
    session = snowflake_local
    session.execute("CREATE TABLE SRC (ID NUMBER, V VARCHAR, _SEQ NUMBER)")
    session.execute("CREATE TABLE T (ID NUMBER, V VARCHAR)")
    changes = ChangeSet(session, table="SRC", stream="SRC_STREAM", offsets="OFFSETS", consumer="C")
    assert changes.offset() == 0 and changes.pending()[1] == 0
    session.execute("INSERT INTO SRC VALUES (1, 'a', 1), (2, 'b', 2)")
    assert changes.consume(_merge)[:2] == (2, 2)
    assert changes.offset() == 2 and changes.pending()[1] == 0
    session.execute("INSERT INTO SRC VALUES (1, 'c', 3)")
    assert changes.consume(_merge, crash_before_offset_commit=True)[:2] == (1, 1)
    assert changes.pending()[1] == 1, "the crashed run's change is delivered again"
    assert changes.consume(_merge)[:2] == (1, 0), "and applied once"
    assert {r["ID"]: r["V"] for r in session.fetch("SELECT ID, V FROM T")} == {1: "c", 2: "b"}


def test_local_statements_are_marked_as_the_stand_in(snowflake_local) -> None:  # type: ignore[no-untyped-def]
    session = snowflake_local
    session.execute("CREATE TABLE SRC (ID NUMBER, V VARCHAR, _SEQ NUMBER)")
    session.execute("CREATE TABLE T (ID NUMBER, V VARCHAR)")
    before = len(session.audit)
    ChangeSet(session, table="SRC", stream="S", offsets="OFFSETS", consumer="C", feature="streams").consume(_merge)
    marked = session.audit[before:]
    assert marked and all(e.stand_in == "streams" for e in marked)
