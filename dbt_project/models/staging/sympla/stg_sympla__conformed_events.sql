-- Sympla events in the unified event shape (intermediate.int_events), one row per event of the
-- latest events snapshot.
select
    cast('sympla' as varchar) as provider,
    cast(event_id as varchar) as event_id,
    cast(event_name as varchar) as event_name,
    cast(starts_at as timestamptz) as starts_at,
    cast(ends_at as timestamptz) as ends_at,
    cast(starts_at_local as varchar) as starts_at_local,
    cast(
        case when is_cancelled then 'cancelled' when is_published then 'published' else 'unpublished' end
        as varchar
    ) as event_status,
    cast(coalesce(is_cancelled, false) as boolean) as is_cancelled,
    cast(venue_name as varchar) as venue_name,
    cast(
        nullif(concat_ws(', ', {{ clean_text('venue_name') }}, {{ clean_text('venue_city') }},
                         {{ clean_text('venue_state') }}), '')
        as varchar
    ) as location,
    -- Sympla's documented event record may lack a page URL: its public page is derived from the id.
    cast(coalesce({{ clean_text('event_url') }}, 'https://www.sympla.com.br/evento/' || event_id) as varchar) as event_url,
    cast(image_url as varchar) as image_url,
    -- Sympla sends local times in America/Sao_Paulo (staging converted them to UTC).
    cast('America/Sao_Paulo' as varchar) as event_timezone,
    cast(true as boolean) as from_snapshot
from {{ ref('stg_sympla__events') }}
