{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['provider', 'order_id'],
        pre_hook="{{ delete_window('order_date') }}",
    )
}}
-- Ticketing orders across providers, one row per (provider, order_id), every status.
-- Each provider maps its orders to the unified shape in its own staging folder
-- (stg_<provider>__conformed_orders); this model unions the providers listed in dbt_project.yml
-- (vars.ticketing_providers) and is the one place that says what an order's status is and whether
-- it counts as revenue: the marts and the reverse sync both read `status` and `counts_as_revenue`
-- from here.
-- Incremental on order_date (= the raw partition day): a windowed run recomputes [min_date, max_date).
with unioned as (
    {{ union_providers('orders', [
        'provider', 'order_id', 'event_id', 'event_name', 'order_status', 'currency',
        'gross_cents', 'refunded_cents', 'tax_cents', 'created_at', 'order_date',
        'campaign_tag_raw', 'campaign_tag', 'buyer_email_hash', 'source_partition',
    ]) }}
),

-- One status vocabulary for every provider: completed | pending | cancelled | refunded (anything
-- else as the provider sent it, lower case). Sympla's "approved" is a completed order.
statused as (
    select
        *,
        case order_status
            when 'approved' then 'completed'
            when 'canceled' then 'cancelled'
            else order_status
        end as status
    from unioned
)

select
    *,
    status = 'completed' as counts_as_revenue,
    gross_cents - refunded_cents as net_cents
from statused
where {{ incremental_window_filter('order_date') }}
