-- Ticket Tailor events in the unified event shape (intermediate.int_events), one row per event:
-- every event of the latest events snapshot, plus the events Ticket Tailor has sold tickets for
-- whose snapshot is not loaded yet, with the name and start their orders carry (`from_snapshot`
-- false; the reverse sync sends only events from a snapshot).
with snapshot_events as (
    select
        event_id,
        event_name,
        starts_at,
        ends_at,
        starts_at_local,
        event_status,
        is_cancelled,
        venue_name,
        -- "venue, postcode"; an online event without a venue is "Online".
        coalesce(
            nullif(concat_ws(', ', {{ clean_text('venue_name') }}, {{ clean_text('venue_postal_code') }}), ''),
            case when is_online then 'Online' end
        ) as location,
        event_url,
        image_url,
        {{ clean_text('event_timezone') }} as event_timezone,
        true as from_snapshot
    from {{ ref('stg_tickettailor__events') }}
),

events_from_orders as (
    select
        event_id,
        max(event_name) as event_name,
        max(event_starts_at) as starts_at,
        cast(null as timestamptz) as ends_at,
        cast(null as varchar) as starts_at_local,
        cast(null as varchar) as event_status,
        false as is_cancelled,
        cast(null as varchar) as venue_name,
        cast(null as varchar) as location,
        cast(null as varchar) as event_url,
        cast(null as varchar) as image_url,
        cast(null as varchar) as event_timezone,
        false as from_snapshot
    from {{ ref('stg_tickettailor__orders') }}
    where event_id is not null
        and event_id not in (select event_id from snapshot_events)
    group by event_id
),

events as (
    select * from snapshot_events
    union all
    select * from events_from_orders
)

select
    cast('tickettailor' as varchar) as provider,
    cast(event_id as varchar) as event_id,
    cast(event_name as varchar) as event_name,
    cast(starts_at as timestamptz) as starts_at,
    cast(ends_at as timestamptz) as ends_at,
    cast(starts_at_local as varchar) as starts_at_local,
    cast(event_status as varchar) as event_status,
    cast(is_cancelled as boolean) as is_cancelled,
    cast(venue_name as varchar) as venue_name,
    cast(location as varchar) as location,
    cast(event_url as varchar) as event_url,
    cast(image_url as varchar) as image_url,
    cast(event_timezone as varchar) as event_timezone,
    cast(from_snapshot as boolean) as from_snapshot
from events
