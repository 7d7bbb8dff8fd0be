-- The lines of each order as the reverse sync sends them, in the order the provider gave them:
-- Ticket Tailor's line items; Sympla's tickets (one participant = one ticket, ordered by id).
-- `total_cents` is the whole line (tax included), exact minor units of the order's currency.
-- Only lines of landed orders: Sympla's participants land by event day, so an event's tickets can be
-- in the lake long before (or without) the order's own day.
with tickettailor as (
    select
        'tickettailor' as provider,
        'tickettailor:' || order_id as order_key,
        'tickettailor:' || line_item_id as item_id,
        coalesce(position, 0) as position,
        coalesce({{ clean_text('description') }}, {{ clean_text('line_item_type') }}, 'Ticket') as item_name,
        coalesce({{ clean_text('line_item_type') }}, 'ticket') as item_kind,
        coalesce(quantity, 1) as quantity,
        coalesce(total_cents, 0) as total_cents
    from {{ ref('stg_tickettailor__order_line_items') }}
),

sympla as (
    select
        'sympla' as provider,
        'sympla:' || order_id as order_key,
        'sympla:' || participant_id as item_id,
        row_number() over (partition by order_id order by participant_id) as position,
        coalesce({{ clean_text('ticket_name') }}, 'Ingresso') as item_name,
        'ticket' as item_kind,
        1 as quantity,
        coalesce(ticket_sale_price_cents, 0) as total_cents
    from {{ ref('stg_sympla__participants') }}
    where order_id is not null
),

lines as (
    select * from tickettailor
    union all
    select * from sympla
)

select lines.*
from lines
inner join {{ ref('int_orders') }} as o
    on lines.order_key = o.provider || ':' || o.order_id
