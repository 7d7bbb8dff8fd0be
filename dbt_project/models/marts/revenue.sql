{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['provider', 'event_id', 'currency', 'order_date'],
        pre_hook="{{ delete_window('order_date') }}",
        on_schema_change='fail',
    )
}}
-- One row per (provider, event_id, currency, order_date): revenue-counting orders only
-- (Ticket Tailor `completed`, Sympla approved). Amounts in integer minor units of `currency`;
-- currencies are never added together. Incremental on order_date: a day's row depends only on
-- that day's orders, so a windowed run recomputes exactly the days in [min_date, max_date).
-- The mart's contract (_marts.yml) is enforced, which dbt allows on an incremental model only with
-- on_schema_change 'fail' or 'append_new_columns'. 'fail': appended columns would be NULL on every
-- earlier day; a changed project is rebuilt with --full-refresh by the pipeline (assets/dbt.py).
select
    provider,
    event_id,
    currency,
    order_date,
    cast(count(*) as bigint) as orders,
    cast(sum(gross_cents) as bigint) as gross_cents,
    cast(sum(refunded_cents) as bigint) as refunded_cents,
    cast(sum(gross_cents) - sum(refunded_cents) as bigint) as net_cents
from {{ ref('int_orders') }}
where counts_as_revenue
    and {{ incremental_window_filter('order_date') }}
group by provider, event_id, currency, order_date
