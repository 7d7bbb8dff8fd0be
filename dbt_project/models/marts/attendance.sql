-- One row per (provider, event_id): tickets issued, checked in, no-shows and the attendance rate.
-- Issued: Ticket Tailor tickets with status `valid`; Sympla participants of approved orders.
-- Checked in counts only issued tickets, so it can never exceed tickets_issued.
with tickets as (
    select
        provider,
        event_id,
        count(*) filter (where counts_as_issued) as tickets_issued,
        count(*) filter (where counts_as_issued and is_checked_in) as tickets_checked_in
    from {{ ref('int_tickets') }}
    where event_id is not null
    group by provider, event_id
),

events as (
    select provider, event_id, event_name, starts_at from {{ ref('int_events') }}
    union all
    -- tickets of an event no snapshot or order has described yet still count
    select t.provider, t.event_id, null, null
    from tickets as t
    where not exists (
        select 1 from {{ ref('int_events') }} as e where e.provider = t.provider and e.event_id = t.event_id
    )
)

select
    e.provider,
    e.event_id,
    e.event_name,
    e.starts_at,
    cast(coalesce(t.tickets_issued, 0) as bigint) as tickets_issued,
    cast(coalesce(t.tickets_checked_in, 0) as bigint) as tickets_checked_in,
    case
        when e.starts_at <= current_timestamp
            then cast(coalesce(t.tickets_issued, 0) - coalesce(t.tickets_checked_in, 0) as bigint)
    end as no_shows,
    case
        when coalesce(t.tickets_issued, 0) > 0
            then cast(t.tickets_checked_in as double) / cast(t.tickets_issued as double)
    end as attendance_rate
from events as e
left join tickets as t
    on e.provider = t.provider and e.event_id = t.event_id
