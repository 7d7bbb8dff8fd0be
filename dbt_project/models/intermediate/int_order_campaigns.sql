-- Revenue-counting orders matched to the Cymbal campaign they carry a tag for, when the order was
-- created inside the campaign's attribution window [sent_at, sent_at + attribution_window_days).
-- Matching is on the trimmed, case-folded tag (DESIGN.md, point 6). Hours, not days, are added so
-- the window is exact in UTC whatever the session time zone.
{%- set window_days = var('attribution_window_days', 7) | int %}

select
    c.campaign_id,
    o.provider,
    o.order_id,
    o.event_id,
    o.currency,
    o.created_at,
    o.gross_cents,
    o.net_cents,
    c.sent_at
from {{ ref('int_orders') }} as o
inner join {{ ref('stg_cymbal__campaign_analytics') }} as c
    on o.campaign_tag = c.campaign_tag
    and o.created_at >= c.sent_at
    and o.created_at < c.sent_at + to_hours({{ window_days * 24 }})
where o.counts_as_revenue
