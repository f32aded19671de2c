"""Unity Catalog names on Spark's one session catalog, and what a Delta table's log says about it.

Why a mapping: Unity Catalog has three levels (`catalog.schema.table`), Spark's session catalog
(`spark_catalog`) has one catalog. The platform maps a catalog and schema to one database,
`catalog__schema`, stored under `lake/<catalog>/<schema>/`, so every product keeps its
Unity Catalog name in the contract, the catalog and the lineage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

SHARED_SCHEMA = "shared"
"""Each producer's schema for the views it grants to consumer domains."""


@dataclass(frozen=True)
class TableName:
    """`catalog.schema.table` as in Unity Catalog, and where it lives in the local session catalog.

    Spark's session catalog (`spark_catalog`) has one catalog, so the platform maps the catalog and
    schema to one database, `catalog__schema`, stored under `lake/<catalog>/<schema>/`.
    """

    catalog: str
    schema: str
    table: str

    @classmethod
    def parse(cls, name: str) -> TableName:
        parts = name.split(".")
        if len(parts) != 3 or not all(re.fullmatch(r"[a-z][a-z0-9_]*", p) for p in parts):
            raise ValueError(f"{name!r} is not a lower-case catalog.schema.table name")
        return cls(*parts)

    @property
    def uc(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.table}"

    @property
    def database(self) -> str:
        return f"{self.catalog}__{self.schema}"

    @property
    def local(self) -> str:
        return f"{self.database}.{self.table}"

    def path(self, lake: Path) -> Path:
        return lake / self.catalog / self.schema / self.table


def consumer_view(product: str, consumer: str) -> TableName:
    """The view a consumer domain is granted: in the producer's catalog, `shared` schema."""
    name = TableName.parse(product)
    return TableName(name.catalog, SHARED_SCHEMA, f"{name.table}_for_{consumer}")


def delta_version(location: Path) -> int:
    """The table's latest version: the highest commit file in `_delta_log` (the Delta protocol)."""
    commits = [int(p.stem) for p in (location / "_delta_log").glob("*.json") if p.stem.isdigit()]
    return max(commits) if commits else -1


def committed_rows(location: Path) -> int:
    """Rows the table's latest commit wrote, as the Delta log records them (`operationMetrics`)."""
    version = delta_version(location)
    for line in (location / "_delta_log" / f"{version:020d}.json").read_text().splitlines():
        action = json.loads(line)
        if "commitInfo" in action:
            return int(action["commitInfo"].get("operationMetrics", {}).get("numOutputRows", -1))
    return -1


def sql_literal(text: str) -> str:
    """A Spark SQL string literal (backslashes and quotes escaped)."""
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"
