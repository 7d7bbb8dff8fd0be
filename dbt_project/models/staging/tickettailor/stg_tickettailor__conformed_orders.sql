-- Ticket Tailor orders in the unified order shape (intermediate.int_orders, sync.sync_orders), one
-- row per order: the provider's columns renamed and cast, nothing decided. The status vocabulary
-- and the revenue rule are int_orders', shared by every provider.
select
    cast('tickettailor' as varchar) as provider,
    cast(order_id as varchar) as order_id,
    cast(event_id as varchar) as event_id,
    cast(event_name as varchar) as event_name,
    cast(order_status as varchar) as order_status,
    cast(currency as varchar) as currency,
    cast(total_cents as bigint) as gross_cents,
    cast(refund_amount_cents as bigint) as refunded_cents,
    cast(tax_cents as bigint) as tax_cents,
    cast(created_at as timestamptz) as created_at,
    cast(order_date as date) as order_date,
    cast(referral_tag as varchar) as campaign_tag_raw,
    cast(campaign_tag as varchar) as campaign_tag,
    cast(buyer_email_hash as varchar) as buyer_email_hash,
    cast(source_partition as date) as source_partition,
    -- Ticket Tailor states each order's currency multiplier (100 for GBP): its exponent when it is a
    -- power of ten, else NULL (the sync then uses the ISO-4217 table).
    cast(
        case
            when currency_base_multiplier > 0
                and cast(power(10, round(log10(currency_base_multiplier))) as bigint) = currency_base_multiplier
            then cast(round(log10(currency_base_multiplier)) as integer)
        end as integer
    ) as provider_currency_exponent
from {{ ref('stg_tickettailor__orders') }}
