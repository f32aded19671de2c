"""Delta SQL helpers: the one code path the lakehouse uses on local Spark, a cluster and Spark Connect."""

from __future__ import annotations

from pathlib import Path

from expert.lakehouse.delta_ops import history, is_delta_table, latest_version, merge_into, table_detail


def test_a_path_without_a_delta_table_is_not_one(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    parquet = tmp_path / "parquet"
    spark.range(3).write.parquet(str(parquet))
    for location in (tmp_path / "missing", tmp_path, parquet):
        assert not is_delta_table(spark, str(location))
        assert latest_version(spark, str(location)) is None


def temp_views(spark) -> set[str]:  # type: ignore[no-untyped-def]
    """The session's temporary views, by SQL (`spark.catalog.listTables()` fails in interpreted mode: README)."""
    return {r["tableName"] for r in spark.sql("SHOW TABLES").collect() if r["isTemporary"]}


def test_merge_into_returns_row_counts_and_leaves_no_view(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = str(tmp_path / "t")
    spark.range(4).selectExpr("id", "'old' AS v").write.format("delta").save(target)
    assert (is_delta_table(spark, target), latest_version(spark, target)) == (True, 0)
    views_before = temp_views(spark)

    source = spark.range(2, 6).selectExpr("id", "'new' AS v")
    upsert = "ON t.id = s.id WHEN MATCHED AND s.v <> t.v THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    first = merge_into(spark, target, source, upsert)
    again = merge_into(spark, target, source, upsert)

    assert (first["num_inserted_rows"], first["num_updated_rows"]) == (2, 2)
    assert (again["num_inserted_rows"], again["num_updated_rows"]) == (0, 0)
    assert temp_views(spark) == views_before
    rows = {r["id"]: r["v"] for r in spark.read.format("delta").load(target).collect()}
    assert rows == {0: "old", 1: "old", 2: "new", 3: "new", 4: "new", 5: "new"}

    commits = history(spark, target, None)
    assert [c["operation"] for c in commits] == ["MERGE", "MERGE", "WRITE"]
    assert table_detail(spark, target).version == latest_version(spark, target) == 2
