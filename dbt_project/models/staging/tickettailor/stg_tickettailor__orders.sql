-- One row per Ticket Tailor order (latest load). Amounts are already minor units in the API.
with source as (
    select * from {{ source('raw', 'tickettailor_orders') }}
    {{ latest_by_key(['id']) }}
)

select
    id as order_id,
    event_id,
    event_name,
    event_start_at as event_starts_at,
    lower(status) as order_status,
    upper(currency) as currency,
    currency_base_multiplier,
    cast(total as bigint) as total_cents,
    cast(subtotal as bigint) as subtotal_cents,
    cast(tax as bigint) as tax_cents,
    cast(total_paid as bigint) as total_paid_cents,
    cast(coalesce(refund_amount, 0) as bigint) as refund_amount_cents,
    created_at,
    cast(timezone('UTC', created_at) as date) as order_date,
    referral_tag,
    {{ normalise_campaign_tag('referral_tag') }} as campaign_tag,
    {{ pii_hash('buyer_email', 'email') }} as buyer_email_hash,
    {{ pii_hash('buyer_phone', 'digits') }} as buyer_phone_hash,
    payment_method_type,
    line_item_count,
    issued_ticket_count,
    _loaded_at as loaded_at,
    _partition as source_partition
from source
