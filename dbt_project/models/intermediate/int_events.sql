-- Every ticketing event across providers. An event Ticket Tailor has sold tickets for but whose
-- events snapshot is not loaded yet still appears, with the name and start its orders carry
-- (`from_snapshot` false); the reverse sync sends only events from a snapshot.
with tickettailor_events as (
    select
        'tickettailor' as provider,
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

tickettailor_events_from_orders as (
    select
        'tickettailor' as provider,
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
        coalesce(is_cancelled, false) as is_cancelled,
        venue_name,
        nullif(concat_ws(', ', {{ clean_text('venue_name') }}, {{ clean_text('venue_city') }},
                         {{ clean_text('venue_state') }}), '') as location,
        -- Sympla's documented event record may lack a page URL: its public page is derived from the id.
        coalesce({{ clean_text('event_url') }}, 'https://www.sympla.com.br/evento/' || event_id) as event_url,
        image_url,
        -- Sympla sends local times in America/Sao_Paulo (staging converted them to UTC).
        'America/Sao_Paulo' as event_timezone,
        true as from_snapshot
    from {{ ref('stg_sympla__events') }}
)

select * from tickettailor_events
union all
select * from tickettailor_events_from_orders
union all
select * from sympla_events
