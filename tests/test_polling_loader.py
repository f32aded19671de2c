"""The polling loader: each file loads once (COPY's load metadata), and all-or-nothing with what follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from expert.runtime.polling_loader import poll_once
from expert.runtime.snowflake_ddl import CopyInto, FileFormat

LINES = FileFormat(skip_header=0, field_delimiter="NONE", escape_unenclosed_field="NONE")


def _copy(source: str, file_name: str) -> CopyInto:
    return CopyInto(table="LINES", columns=("LINE",), source=f"@STAGE/{source}/{file_name}.gz", file_format=LINES)


def _tag(session, source: str, file_name: str) -> None:  # type: ignore[no-untyped-def]
    session.execute("UPDATE LINES SET FILE_NAME = %s WHERE FILE_NAME IS NULL", (file_name,))


@pytest.fixture
def inbox(snowflake_local, workdir: Path) -> Path:  # type: ignore[no-untyped-def]
    snowflake_local.execute("CREATE TABLE LINES (FILE_NAME VARCHAR, LINE VARCHAR)")
    snowflake_local.execute("CREATE STAGE STAGE")
    (workdir / "inbox" / "feed").mkdir(parents=True)
    return workdir / "inbox"


def test_each_file_loads_once(snowflake_local, inbox: Path) -> None:  # type: ignore[no-untyped-def]
    (inbox / "feed" / "a.txt").write_text("one\ntwo\n")
    first = poll_once(snowflake_local, inbox, stage="STAGE", copy=_copy, after_load=_tag)
    (inbox / "feed" / "b.txt").write_text("three\n")
    second = poll_once(snowflake_local, inbox, stage="STAGE", copy=_copy, after_load=_tag)
    assert [(f.file, f.status, f.lines) for f in first] == [("feed/a.txt", "LOADED", 2)]
    assert [(f.file, f.status) for f in second] == [("feed/a.txt", "SKIPPED (loaded before)"), ("feed/b.txt", "LOADED")]
    rows = snowflake_local.fetch("SELECT FILE_NAME, COUNT(*) AS N FROM LINES GROUP BY 1 ORDER BY 1")
    assert rows == [{"FILE_NAME": "feed/a.txt", "N": 2}, {"FILE_NAME": "feed/b.txt", "N": 1}]


def test_a_failure_after_the_copy_rolls_the_file_back(snowflake_local, inbox: Path) -> None:  # type: ignore[no-untyped-def]
    (inbox / "feed" / "a.txt").write_text("one\n")

    def fail(session, source: str, file_name: str) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("judging failed")

    with pytest.raises(RuntimeError, match="judging failed"):
        poll_once(snowflake_local, inbox, stage="STAGE", copy=_copy, after_load=fail)
    assert snowflake_local.scalar("SELECT COUNT(*) FROM LINES") == 0
    loads = poll_once(snowflake_local, inbox, stage="STAGE", copy=_copy, after_load=_tag)
    assert [(f.status, f.lines) for f in loads] == [("LOADED", 1)], "the rolled-back file loads on the next round"
