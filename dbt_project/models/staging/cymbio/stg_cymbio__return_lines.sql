-- One row per returned line (return_id, line_number), from the latest landing of its return.
with source as (
    select * from {{ source('raw', 'cymbio_return_lines') }}
    {{ latest_by_key(['return_id', 'line_number']) }}
)

select
    return_id,
    line_number,
    sku,
    upc,
    coalesce(ordered_quantity, 0) as ordered_quantity,
    coalesce(returned_quantity, 0) as returned_quantity,
    _loaded_at as loaded_at,
    _partition as source_partition
from source
