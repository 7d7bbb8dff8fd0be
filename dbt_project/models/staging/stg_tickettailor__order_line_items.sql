-- One row per Ticket Tailor order line item (latest load of its order).
with source as (
    select * from {{ source('raw', 'tickettailor_order_line_items') }}
    {{ latest_by_key(['id']) }}
)

select
    id as line_item_id,
    order_id,
    order_created_at,
    lower(type) as line_item_type,
    description,
    quantity,
    cast(booking_fee as bigint) as booking_fee_cents,
    cast(value as bigint) as value_cents,
    cast(total as bigint) as total_cents,
    _loaded_at as loaded_at,
    _partition as source_partition
from source
