-- Sympla orders in the unified order shape (intermediate.int_orders, sync.sync_orders), one row
-- per order: the provider's columns renamed and cast, nothing decided. The status vocabulary
-- (Sympla's `approved` is a completed order) and the revenue rule are int_orders', shared by every
-- provider.
select
    cast('sympla' as varchar) as provider,
    cast(order_id as varchar) as order_id,
    cast(event_id as varchar) as event_id,
    -- Sympla's orders do not carry the event's name.
    cast(null as varchar) as event_name,
    cast(order_status as varchar) as order_status,
    cast(currency as varchar) as currency,
    cast(order_total_sale_price_cents as bigint) as gross_cents,
    -- Sympla reports refunds as an order status, not as an amount.
    cast(0 as bigint) as refunded_cents,
    cast(null as bigint) as tax_cents,
    cast(created_at as timestamptz) as created_at,
    cast(order_date as date) as order_date,
    cast(utm_campaign as varchar) as campaign_tag_raw,
    cast(campaign_tag as varchar) as campaign_tag,
    cast(buyer_email_hash as varchar) as buyer_email_hash,
    cast(source_partition as date) as source_partition,
    -- Sympla states no minor unit of its own: the ISO-4217 table's is used.
    cast(null as integer) as provider_currency_exponent
from {{ ref('stg_sympla__orders') }}
