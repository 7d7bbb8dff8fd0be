-- The lines of each order as the reverse sync sends them, in the order the provider gave them
-- (Ticket Tailor's line items; Sympla's tickets, one participant = one ticket). Each provider maps
-- its lines to the unified shape in its own staging folder (stg_<provider>__conformed_order_items);
-- this model unions the providers listed in dbt_project.yml (vars.ticketing_providers) and
-- namespaces the ids by provider. `total_cents` is the whole line (tax included), exact minor units
-- of the order's currency.
-- Only lines of landed orders: Sympla's participants land by event day, so an event's tickets can be
-- in the lake long before (or without) the order's own day.
with lines as (
    select
        provider,
        provider || ':' || order_id as order_key,
        provider || ':' || item_id as item_id,
        position,
        item_name,
        item_kind,
        quantity,
        total_cents
    from (
        {{ union_providers('order_items', [
            'provider', 'order_id', 'item_id', 'position', 'item_name', 'item_kind', 'quantity',
            'total_cents',
        ]) }}
    )
)

select lines.*
from lines
inner join {{ ref('int_orders') }} as o
    on lines.order_key = o.provider || ':' || o.order_id
