"""Moving tables between the lake (Delta, read by Spark) and the warehouse (Snowflake).

- `transfer`: a Delta table as pandas through Arrow, and the Snowflake `CREATE TABLE` its Spark
  schema maps to (explicit types: the published contract, not pandas' guess), and the rows that
  differ between two copies of a table after a round trip.
- `reconcile`: per-day checksums of both copies, the days and measures that disagree, the rows
  behind a disagreement, and the repair of one day from the lake.
"""
