-- Ticket Tailor order lines in the unified order-item shape (sync.sync_order_items), one row per
-- line item, in the order the API gave them. `total_cents` is the whole line, tax included.
select
    cast('tickettailor' as varchar) as provider,
    cast(order_id as varchar) as order_id,
    cast(line_item_id as varchar) as item_id,
    cast(coalesce(position, 0) as bigint) as position,
    cast(coalesce({{ clean_text('description') }}, {{ clean_text('line_item_type') }}, 'Ticket') as varchar) as item_name,
    cast(coalesce({{ clean_text('line_item_type') }}, 'ticket') as varchar) as item_kind,
    cast(coalesce(quantity, 1) as bigint) as quantity,
    cast(coalesce(total_cents, 0) as bigint) as total_cents
from {{ ref('stg_tickettailor__order_line_items') }}
