{#-
  Half-open [min_date, max_date) reload windows for incremental models.

  The pipeline sets the environment variables MARQUEE_DBT_MIN_DATE / MARQUEE_DBT_MAX_DATE
  (YYYY-MM-DD) for the days a run (re)loaded; by hand, `--vars '{min_date: 2026-03-01, max_date:
  2026-03-08}'` does the same and wins over the environment. Not --vars in the pipeline: dbt
  re-parses the whole project whenever --vars change, which they do every day, while a window read
  from the environment at run time leaves its saved parse state valid. An incremental model then:
    1. deletes its rows whose window column falls in the window (pre_hook `delete_window`), so a
       record that disappeared upstream disappears here too, and
    2. recomputes only the rows of that window (`in_window` in the model's WHERE), merged with
       delete+insert on the model's unique key.
  With no vars (or on --full-refresh / first build) everything is selected, so a full build and
  "full build, then any number of windowed runs over the same raw data" give identical tables.
-#}

{% macro window_bounds() -%}
    {%- set bounds = [] -%}
    {%- for name in ('min_date', 'max_date') -%}
        {%- set value = var(name, none) -%}
        {%- if value in (none, '', 'None', 'null') -%}
            {%- set value = env_var('MARQUEE_DBT_' ~ name | upper, '') -%}
        {%- endif -%}
        {%- do bounds.append(value if value not in (none, '', 'None', 'null') else none) -%}
    {%- endfor -%}
    {{ return((bounds[0], bounds[1])) }}
{%- endmacro %}

{#- SQL predicate: `column` lies in [min_date, max_date). True when no window is set. -#}
{% macro in_window(column) -%}
    {%- set lo, hi = window_bounds() -%}
    {%- if lo is none and hi is none -%}
        true
    {%- else -%}
        (
            {%- if lo is not none %} {{ column }} >= cast('{{ lo }}' as date){% endif -%}
            {%- if lo is not none and hi is not none %} and{% endif -%}
            {%- if hi is not none %} {{ column }} < cast('{{ hi }}' as date){% endif %}
        )
    {%- endif -%}
{%- endmacro %}

{#- Model-side filter: restrict to the window only on incremental runs. -#}
{% macro incremental_window_filter(column) -%}
    {%- if is_incremental() -%}{{ in_window(column) }}{%- else -%}true{%- endif -%}
{%- endmacro %}

{#- pre_hook: drop this model's rows in the window before the window is recomputed. -#}
{% macro delete_window(column) -%}
    {%- set lo, hi = window_bounds() -%}
    {%- if is_incremental() and (lo is not none or hi is not none) -%}
        delete from {{ this }} where {{ in_window(column) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
