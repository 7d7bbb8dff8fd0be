{#-
  Money columns hold integer minor units: fails (one row naming the type) unless the column's
  database type is an integer type. Checks the type itself, not the values, so a DECIMAL or DOUBLE
  that happens to hold whole numbers still fails.
-#}
{% test is_integer_column(model, column_name) %}
{%- set ns = namespace(dtype='(missing)') -%}
{%- if execute -%}
    {%- for col in adapter.get_columns_in_relation(model) -%}
        {%- if col.name | lower == column_name | lower -%}{%- set ns.dtype = col.dtype | upper -%}{%- endif -%}
    {%- endfor -%}
{%- endif -%}
{%- set integer_types = ['BIGINT', 'INTEGER', 'HUGEINT', 'SMALLINT', 'TINYINT', 'UBIGINT', 'UINTEGER'] -%}
select '{{ column_name }}' as column_name, '{{ ns.dtype }}' as data_type
where {{ 'false' if (not execute or ns.dtype in integer_types) else 'true' }}
{% endtest %}
