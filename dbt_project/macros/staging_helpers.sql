{#-
  Keep the latest version of each record by the provider's primary key.

  Raw partitions are re-loaded (orders for 7 days, tickets for late check-ins) and snapshots land
  every day, so one key can appear many times. The latest load wins; `_partition` then `_raw`
  break ties so the choice is deterministic, which the incremental-equals-full guarantee relies on.
-#}
{% macro latest_by_key(key_columns) -%}
    qualify row_number() over (
        partition by {{ key_columns | join(', ') }}
        order by _loaded_at desc, _partition desc, _raw desc
    ) = 1
{%- endmacro %}

{#- A campaign tag / UTM value as the attribution join sees it: trimmed, case-folded, '' = none.
    DuckDB's trim() only strips spaces; tags arrive with tabs and newlines too, so strip all
    whitespace with a regex. -#}
{% macro normalise_campaign_tag(expr) -%}
    nullif(lower(regexp_replace(cast({{ expr }} as varchar), '^\s+|\s+$', '', 'g')), '')
{%- endmacro %}

{#- Parse a provider's naive local date-time string in a named zone into a UTC TIMESTAMPTZ. -#}
{% macro local_to_utc(ts_expr, zone) -%}
    timezone('{{ zone }}', cast({{ ts_expr }} as timestamp))
{%- endmacro %}

{#-
  Sympla order status, spelt two ways by the API: orders say "APPROVED", participants say "A".
  Both map to one lower-case vocabulary: approved, pending, cancelled, refunded (else as sent).
-#}
{% macro sympla_order_status(expr) -%}
    case upper(trim({{ expr }}))
        when 'A' then 'approved'
        when 'APPROVED' then 'approved'
        when 'P' then 'pending'
        when 'PENDING' then 'pending'
        when 'C' then 'cancelled'
        when 'CANCELLED' then 'cancelled'
        when 'CANCELED' then 'cancelled'
        when 'R' then 'refunded'
        when 'REFUNDED' then 'refunded'
        else lower(trim({{ expr }}))
    end
{%- endmacro %}

{#- Text as the payloads carry it: surrounding whitespace of any kind removed (DuckDB's trim() only
    strips spaces; sources send tabs and newlines too), and '' is NULL. -#}
{% macro clean_text(expr) -%}
    nullif(regexp_replace(cast({{ expr }} as varchar), '^\s+|\s+$', '', 'g'), '')
{%- endmacro %}
