"""What a statement's text says: tables read and written, filter columns, the normalized form."""

from __future__ import annotations

from expert.runtime.query_text import filter_columns, normalized, tables_read, written_table
from expert.runtime.usage_history import BI_TILES, HOURLY_ETL, NIGHTLY_ETL


def test_tables_read_by_queries_only() -> None:
    assert tables_read("SELECT * FROM db.s.a x JOIN db.s.b y ON x.k = y.k") == {"DB.S.A", "DB.S.B"}
    assert tables_read("with c as (select * from Shop.Core.Orders) select * from c") == {"SHOP.CORE.ORDERS", "C"}
    assert tables_read("INSERT INTO t SELECT * FROM u") == set(), "a write is not a read here"
    assert tables_read("CREATE OR REPLACE MASKING POLICY p AS (v STRING) RETURNS STRING -> v") == set()
    assert tables_read("SELECT FROM WHERE") == set(), "text that does not parse reads nothing"


def test_written_table() -> None:
    assert written_table(HOURLY_ETL[2].text) == "SHOP.CORE.ORDERS"
    assert written_table(NIGHTLY_ETL[1].text) == "SHOP.MART.DAILY_REVENUE"
    assert written_table(BI_TILES[0].text) is None


def test_filter_columns_by_table() -> None:
    assert filter_columns("SELECT * FROM a.b.t x JOIN a.b.u y ON x.k = y.k WHERE x.ts > 1 AND y.c = 2") == {
        "A.B.T": {"TS"},
        "A.B.U": {"C"},
    }
    assert filter_columns("SELECT * FROM t") == {}


def test_two_spellings_of_one_query_normalize_alike() -> None:
    assert normalized(BI_TILES[0].text) == normalized(BI_TILES[0].variant)
    assert normalized(BI_TILES[0].text) != normalized(BI_TILES[1].text)
