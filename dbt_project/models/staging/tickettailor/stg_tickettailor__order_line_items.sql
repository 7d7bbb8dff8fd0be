-- One row per Ticket Tailor order line item (latest load of its order). `position` is the line's
-- place in its order's `line_items` list (1-based), so an order's lines keep the order the API gave.
with source as (
    select * from {{ source('raw', 'tickettailor_order_line_items') }}
    {{ latest_by_key(['id']) }}
),

order_lines as (
    select id as order_id, json_extract_string(_raw, '$.line_items[*].id') as line_item_ids
    from {{ source('raw', 'tickettailor_orders') }}
    {{ latest_by_key(['id']) }}
)

select
    source.id as line_item_id,
    source.order_id,
    list_position(order_lines.line_item_ids, source.id) as position,
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
left join order_lines on order_lines.order_id = source.order_id
