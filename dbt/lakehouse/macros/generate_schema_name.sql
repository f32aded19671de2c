{#-
  A model's `schema` config is the schema's exact name (STAGING), not dbt's default
  `<target schema>_<custom>` (MARTS_STAGING): the serving layout is the same on every target.
  Models without one go to the target's schema.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
