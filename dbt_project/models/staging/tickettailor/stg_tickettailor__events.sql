-- One row per Ticket Tailor event: the latest snapshot that carried it.
with source as (
    select * from {{ source('raw', 'tickettailor_events') }}
    {{ latest_by_key(['id']) }}
)

select
    id as event_id,
    name as event_name,
    lower(status) as event_status,
    -- The documented statuses have no "cancelled"; a cancelled-looking one is honoured anyway.
    coalesce(lower(status) like '%cancel%', false) as is_cancelled,
    upper(currency) as currency,
    created_at,
    start_at as starts_at,
    end_at as ends_at,
    start_iso as starts_at_local,
    end_iso as ends_at_local,
    timezone as event_timezone,
    event_series_id,
    venue_name,
    venue_postal_code,
    url as event_url,
    coalesce(
        nullif(trim(json_extract_string(_raw, '$.images.header')), ''),
        nullif(trim(json_extract_string(_raw, '$.images.thumbnail')), '')
    ) as image_url,
    hidden as is_hidden,
    online_event as is_online,
    private as is_private,
    total_issued_tickets,
    total_orders,
    _loaded_at as loaded_at,
    _partition as source_partition
from source
