-- One row per (provider, event_id): tickets issued, checked in, no-shows and the attendance rate.
-- Issued: int_tickets.counts_as_issued, as each provider's conformed tickets say (Ticket Tailor
-- tickets with status `valid`; Sympla participants of approved orders).
-- Checked in counts only issued tickets, so it can never exceed tickets_issued.
--
-- Only events whose tickets have been loaded are reported: an event's complete ticket list lands
-- under its start day (UTC) in its provider's per-event entity (the raw table the provider marks
-- `meta.marquee.event_tickets`: tickettailor_issued_tickets, sympla_participants), and a loaded day
-- always leaves a file, empty when it had no tickets. So an event whose start-day partition is in
-- raw.landed_partitions is reported (zeros mean "no tickets"); an event whose day was never loaded,
-- or whose start is unknown, has no row rather than misleading zeros. Ticket Tailor tickets embedded in orders (landed by order day) still count
-- towards a reported event, but never make an event reported on their own.
with tickets as (
    select
        provider,
        event_id,
        count(*) filter (where counts_as_issued) as tickets_issued,
        count(*) filter (where counts_as_issued and is_checked_in) as tickets_checked_in,
        max(loaded_at) as tickets_loaded_at
    from {{ ref('int_tickets') }}
    where event_id is not null
    group by provider, event_id
),

ticket_days_loaded as (
    select distinct provider, partition_date
    from {{ source('raw', 'landed_partitions') }}
    where asset in ({{ event_ticket_assets() }})
),

events as (
    select e.provider, e.event_id, e.event_name, e.starts_at
    from {{ ref('int_events') }} as e
    where exists (
        select 1
        from ticket_days_loaded as d
        where d.provider = e.provider
            and d.partition_date = cast(timezone('UTC', e.starts_at) as date)
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
    end as attendance_rate,
    cast(t.tickets_loaded_at as timestamptz) as tickets_loaded_at
from events as e
left join tickets as t
    on e.provider = t.provider and e.event_id = t.event_id
