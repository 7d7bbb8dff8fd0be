-- One row per Cymbio return (by returnId; a crash between landing and acknowledging lands it twice).
with source as (
    select * from {{ source('raw', 'cymbio_returns') }}
    {{ latest_by_key(['return_id']) }}
)

select
    return_id,
    sales_order_number,
    cymbio_order_id,
    order_id_in_source,
    order_po,
    coalesce(nullif(lower(trim(reason_code)), ''), 'unknown') as reason_code,
    reason as reason_text,
    acknowledged as is_acknowledged,
    created_at,
    updated_at,
    line_count,
    _loaded_at as loaded_at,
    _partition as source_partition
from source
