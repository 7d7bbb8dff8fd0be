-- Every ticketing event across providers. An event Ticket Tailor has sold tickets for but whose
-- events snapshot is not loaded yet still appears, with the name and start its orders carry.
with tickettailor_events as (
    select
        'tickettailor' as provider,
        event_id,
        event_name,
        starts_at,
        ends_at,
        starts_at_local,
        event_status,
        venue_name,
        event_url
    from {{ ref('stg_tickettailor__events') }}
),

tickettailor_events_from_orders as (
    select
        'tickettailor' as provider,
        event_id,
        max(event_name) as event_name,
        max(event_starts_at) as starts_at,
        cast(null as timestamptz) as ends_at,
        cast(null as varchar) as starts_at_local,
        cast(null as varchar) as event_status,
        cast(null as varchar) as venue_name,
        cast(null as varchar) as event_url
    from {{ ref('stg_tickettailor__orders') }}
    where event_id is not null
        and event_id not in (select event_id from tickettailor_events)
    group by event_id
),

sympla_events as (
    select
        'sympla' as provider,
        event_id,
        event_name,
        starts_at,
        ends_at,
        starts_at_local,
        case when is_cancelled then 'cancelled' when is_published then 'published' else 'unpublished' end
            as event_status,
        venue_name,
        event_url
    from {{ ref('stg_sympla__events') }}
)

select * from tickettailor_events
union all
select * from tickettailor_events_from_orders
union all
select * from sympla_events
