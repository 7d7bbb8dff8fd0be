{#- Use the configured schema name as-is (staging, intermediate, marts), not "<target>_<schema>":
    analysts query marts.revenue, whatever the target is called. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
