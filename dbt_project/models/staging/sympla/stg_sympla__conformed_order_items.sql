-- Sympla order lines in the unified order-item shape (sync.sync_order_items): one line per ticket
-- (participant), ordered by participant id within its order. Participants without an order are
-- no order's line.
select
    cast('sympla' as varchar) as provider,
    cast(order_id as varchar) as order_id,
    cast(participant_id as varchar) as item_id,
    cast(row_number() over (partition by order_id order by participant_id) as bigint) as position,
    cast(coalesce({{ clean_text('ticket_name') }}, 'Ingresso') as varchar) as item_name,
    cast('ticket' as varchar) as item_kind,
    cast(1 as bigint) as quantity,
    cast(coalesce(ticket_sale_price_cents, 0) as bigint) as total_cents
from {{ ref('stg_sympla__participants') }}
where order_id is not null
