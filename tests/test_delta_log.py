"""Reading a local Delta table's commits and live files from its JSON log, without Spark."""

from __future__ import annotations

import json
from pathlib import Path

from expert.lakehouse.delta_log import Commit, latest_version, live_files, table_commits


def _commit(log: Path, version: int, *actions: dict) -> None:
    (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")


def test_commits_and_live_files_by_hand(tmp_path: Path) -> None:
    log = tmp_path / "t" / "_delta_log"
    log.mkdir(parents=True)
    _commit(
        log, 0, {"commitInfo": {"operation": "WRITE"}}, {"add": {"path": "a.parquet"}}, {"add": {"path": "b.parquet"}}
    )
    _commit(
        log,
        1,
        {"commitInfo": {"operation": "RESTORE", "operationParameters": {"version": 0}}},
        {"remove": {"path": "b.parquet"}},
        {"add": {"path": "c.parquet"}},
    )
    (log / "00000000000000000001.crc").write_text("{}")
    assert table_commits(tmp_path / "t") == [
        Commit(0, "WRITE", {}, ("a.parquet", "b.parquet"), ()),
        Commit(1, "RESTORE", {"version": 0}, ("c.parquet",), ("b.parquet",)),
    ]
    assert live_files(tmp_path / "t") == {"a.parquet", "c.parquet"}


def test_the_log_agrees_with_delta(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table = tmp_path / "t"
    spark.range(6).coalesce(1).write.format("delta").save(str(table))
    spark.range(6, 9).coalesce(1).write.format("delta").mode("append").save(str(table))
    spark.sql(f"DELETE FROM delta.`{table}` WHERE id >= 6")
    history = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").orderBy("version").collect()
    assert [(c.version, c.operation) for c in table_commits(table)] == [(r["version"], r["operation"]) for r in history]
    assert latest_version(table) == history[-1]["version"]
    files = {Path(f).name for f in spark.read.format("delta").load(str(table)).inputFiles()}
    assert {Path(f).name for f in live_files(table)} == files
