-- One row per Sympla event: the latest snapshot that carried it. Start/end are UTC; the
-- *_local columns keep Sympla's America/Sao_Paulo wall-clock values as sent.
with source as (
    select * from {{ source('raw', 'sympla_events') }}
    {{ latest_by_key(['id']) }}
)

select
    id as event_id,
    reference_id,
    name as event_name,
    start_date as starts_at,
    end_date as ends_at,
    start_date_local as starts_at_local,
    end_date_local as ends_at_local,
    private_event as is_private,
    published as is_published,
    cancelled as is_cancelled,
    address_name as venue_name,
    address_city as venue_city,
    address_state as venue_state,
    address_country as venue_country,
    host_name,
    category_prim as category_primary,
    category_sec as category_secondary,
    url as event_url,
    nullif(trim(json_extract_string(_raw, '$.image')), '') as image_url,
    _loaded_at as loaded_at,
    _partition as source_partition
from source
