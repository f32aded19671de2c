{#-
  The grain of a mart: no two rows share the values of `columns` (dbt-core has `unique` for one
  column only; this is the multi-column form, written here because the project installs no
  packages).
-#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_per_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
