-- Events as the reverse sync sends them to Cymbal: every event of an events snapshot, every
-- ticketing provider (int_events), start and end in UTC. Ids are namespaced by provider (`tickettailor:ev_1`,
-- `sympla:123`) so the two ticketing systems can never collide in a destination.
select
    provider || ':' || event_id as event_key,
    provider,
    event_id,
    {{ clean_text('event_name') }} as event_name,
    {{ clean_text('event_url') }} as event_url,
    {{ clean_text('image_url') }} as image_url,
    starts_at,
    ends_at,
    location,
    is_cancelled,
    event_timezone
from {{ ref('int_events') }}
where from_snapshot
