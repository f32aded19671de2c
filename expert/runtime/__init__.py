"""The shared runtime layer: one module per concern, used by every pattern script.

- `config`: settings from `.env`; each service local unless its settings are complete.
- `spark`: the one Spark/Delta session builder.
- `snowflake`: the one Snowflake session factory, with the cloud-only statement record.
- `snowflake_ddl`: typed definitions of account-level Snowflake objects, rendered to DDL.
- `databricks`: the Databricks workspace client (cloud mode only), with short timeouts.
- `data`: the seeded e-commerce world generator.
- `workdir`: one isolated directory per pattern run.
- `narrate`: numbered steps, tables, figures and the closing "verified" summary.
- `pattern`: the harness a pattern's `main()` runs in (arguments, workdir, checks, report).
"""
