{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['provider', 'order_id'],
        pre_hook="{{ delete_window('order_date') }}",
    )
}}
-- Ticketing orders across providers, one row per (provider, order_id), every status.
-- Incremental on order_date (= the raw partition day): a windowed run recomputes [min_date, max_date).
with tickettailor as (
    select
        'tickettailor' as provider,
        order_id,
        event_id,
        order_status,
        order_status = 'completed' as counts_as_revenue,
        currency,
        total_cents as gross_cents,
        refund_amount_cents as refunded_cents,
        created_at,
        order_date,
        referral_tag as campaign_tag_raw,
        campaign_tag,
        buyer_email_hash,
        source_partition
    from {{ ref('stg_tickettailor__orders') }}
),

sympla as (
    select
        'sympla' as provider,
        order_id,
        event_id,
        order_status,
        order_status = 'approved' as counts_as_revenue,
        currency,
        order_total_sale_price_cents as gross_cents,
        cast(0 as bigint) as refunded_cents,
        created_at,
        order_date,
        utm_campaign as campaign_tag_raw,
        campaign_tag,
        buyer_email_hash,
        source_partition
    from {{ ref('stg_sympla__orders') }}
),

unioned as (
    select * from tickettailor
    union all
    select * from sympla
)

select
    *,
    gross_cents - refunded_cents as net_cents
from unioned
where {{ incremental_window_filter('order_date') }}
