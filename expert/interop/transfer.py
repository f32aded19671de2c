"""Delta → Snowflake: explicit table DDL from the Spark schema, and the rows through Arrow.

Why explicit DDL: a table that `write_pandas` creates by inference turns dates and decimals into
text. The Snowflake table is the published contract, so its types are mapped from the Delta
schema, one rule per Spark type. Why Arrow: `DataFrame.toArrow()` ships Arrow batches from the
JVM, with no Python row objects, and the connector stages the frame as Parquet for `COPY INTO`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

SNOWFLAKE_TYPES = {
    "long": "NUMBER(19, 0)",
    "integer": "NUMBER(10, 0)",
    "double": "FLOAT",
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP_NTZ",
    "boolean": "BOOLEAN",
}
"""Spark type name → Snowflake type (decimals keep their precision and scale)."""


def snowflake_table_ddl(name: str, schema: StructType) -> str:
    """`CREATE TABLE IF NOT EXISTS name (...)` with every column typed from the Spark schema, upper-cased."""
    columns = []
    for f in schema.fields:
        kind = f.dataType.typeName()
        decimal = f"NUMBER({f.dataType.precision}, {f.dataType.scale})" if kind == "decimal" else ""  # type: ignore[attr-defined]
        sf_type = decimal or SNOWFLAKE_TYPES[kind]
        columns.append(f"{f.name.upper()} {sf_type}")
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(columns)})"


def delta_frame(spark: SparkSession, location: str, where: str = "") -> pd.DataFrame:
    """A Delta table (or the slice `where` selects) as pandas through Arrow, columns upper-cased for Snowflake."""
    df = spark.read.format("delta").load(location)
    if where:
        df = df.where(where)
    frame = df.toArrow().to_pandas()
    frame.columns = [c.upper() for c in frame.columns]
    return frame


def rows_differing(expected: DataFrame, actual: DataFrame) -> dict[str, int]:
    """Rows only in `expected` ("missing") and only in `actual` ("extra"), duplicates counted (exceptAll both ways).

    Empty when the two frames hold the same multiset of rows: what a round trip through another
    system (Spark → Snowflake → Spark) must give.
    """
    from pyspark.sql import functions as F

    sides = (
        expected.exceptAll(actual)
        .withColumn("side", F.lit("missing"))
        .unionByName(actual.exceptAll(expected).withColumn("side", F.lit("extra")))
        .groupBy("side")
        .count()
        .collect()
    )
    return {row["side"]: int(row["count"]) for row in sides}
