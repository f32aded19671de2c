{#-
  Incremental: a run rebuilds only the trailing `lookback_days` (where late orders land) and
  replaces those days by key. On Snowflake this is dbt-snowflake's default: MERGE from a
  temporary view. The local engine (fakesnow 0.12.1 on DuckDB) runs neither half of that path:
    - the temporary view (or temporary table) is created with a qualified name, which DuckDB
      refuses: `Parser Error: TEMPORARY table names can *only* use the "temp" catalog`;
    - through a transient table instead, fakesnow's rewrite of dbt's MERGE fails:
      `Binder Error: Ambiguous reference to column name "CAPTURED_REVENUE"`.
  So the `local` target takes `delete+insert` through a transient table: the same rows by
  another path (delete the rebuilt days, insert them again). On Spark (dbt-spark) MERGE needs a
  Delta table; dbt-databricks makes Delta tables by default.
-#}
{{
    config(
        materialized='incremental',
        unique_key='order_date',
        on_schema_change='fail',
        incremental_strategy=('delete+insert' if target.name == 'local' else 'merge'),
        tmp_relation_type=('transient' if target.name == 'local' else none),
        file_format=('delta' if target.type == 'spark' else none),
    )
}}

select
    order_date,
    count(*) as orders,
    sum(amount) as revenue,
    sum(case when is_captured then amount else 0 end) as captured_revenue
from {{ ref('stg_sales') }}
{% if is_incremental() %}
where order_date >= (
    select {{ dbt.dateadd('day', -var('lookback_days'), 'max(order_date)') }} from {{ this }}
)
{% endif %}
group by order_date
