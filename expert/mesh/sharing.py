"""The recipient side of a Delta Sharing share, stood in for locally, and proof that it is read-only.

Why a stand-in: a Delta Sharing recipient reads a share through the sharing server's protocol from
another organisation. Locally, the recipient's catalog is a view resolved from the open-source
server's own config file (`share.schema.table` → table location), pinned to the table version
current when it was opened, as a Delta Sharing query is. `attempt_writes` then tries every kind
of write on it; the engine must refuse each one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from expert.lakehouse.delta_ops import delta_table
from expert.mesh.names import delta_version

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@contextlib.contextmanager
def expected_failure() -> Iterator[None]:
    """Keep PySpark's error log quiet while a statement that must fail runs: the failure is the proof.

    PySpark logs every SQL analysis error (as JSON, on stderr) through its `SQLQueryContextLogger`
    before raising it; the exception itself still reaches the caller.
    """
    from pyspark.logger import PySparkLogger

    logger = PySparkLogger.getLogger("SQLQueryContextLogger")
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before


def open_share(spark: SparkSession, config_path: Path, table: str, recipient: str) -> str:
    """The recipient side: resolve `share.schema.table` from the server config and mount it read-only.

    Like a Delta Sharing query, the view is pinned to the table version current when it was opened.
    """
    share_name, schema_name, table_name = table.split(".")
    config = yaml.safe_load(config_path.read_text())
    for share in config["shares"]:
        for schema in share["schemas"] if share["name"] == share_name else ():
            for entry in schema["tables"] if schema["name"] == schema_name else ():
                if entry["name"] == table_name:
                    location = Path(entry["location"].removeprefix("file://"))
                    database = f"{recipient}__{share_name}"
                    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
                    spark.sql(
                        f"CREATE OR REPLACE VIEW {database}.{table_name} AS SELECT * FROM "
                        f"{delta_table(location)} VERSION AS OF {delta_version(location)}"
                    )
                    return f"{database}.{table_name}"
    raise KeyError(f"not in share {share_name}: {schema_name}.{table_name}")


def attempt_writes(spark: SparkSession, view: str) -> dict[str, str]:
    """Try every kind of write against the recipient's view; each must be refused by the engine."""
    from pyspark.errors import AnalysisException

    attempts = {
        "INSERT": f"INSERT INTO {view} SELECT * FROM {view} LIMIT 1",
        "UPDATE": f"UPDATE {view} SET revenue = 0",
        "DELETE": f"DELETE FROM {view}",
        "MERGE": f"MERGE INTO {view} t USING {view} s ON t.customer_id = s.customer_id WHEN MATCHED THEN DELETE",
    }
    outcome = {}
    for kind, sql in attempts.items():
        try:
            with expected_failure():
                spark.sql(sql)
            outcome[kind] = "accepted"
        except AnalysisException as exc:
            outcome[kind] = getattr(exc, "getCondition", lambda: None)() or str(exc).split("]")[0].strip("[")
    return outcome


def write_server_config(path: Path, share: str, schema: str, table: str, location: Path) -> None:
    """The open-source Delta Sharing server's config: one share, one schema, one table at `location`."""
    config = {
        "version": 1,
        "shares": [
            {"name": share, "schemas": [{"name": schema, "tables": [{"name": table, "location": location.as_uri()}]}]}
        ],
        "host": "127.0.0.1",
        "port": 8080,
        "endpoint": "/delta-sharing",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Delta Sharing server config (delta-io/delta-sharing). Add `authorization` with a bearer\n"
        "# token from your secret store before serving it; never commit the token.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )


@contextlib.contextmanager
def quiet_logger(name: str, level: int) -> Iterator[None]:
    """Raise a library logger's level for a block (the local engine warns about DDL it does not model)."""
    import logging

    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
