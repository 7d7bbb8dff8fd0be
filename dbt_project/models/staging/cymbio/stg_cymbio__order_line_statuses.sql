-- One row per Cymbio order line (cymbio_order_id, line_number): its latest known status.
with source as (
    select * from {{ source('raw', 'cymbio_order_line_statuses') }}
    {{ latest_by_key(['cymbio_order_id', 'line_number']) }}
)

select
    cymbio_order_id,
    line_number,
    order_po,
    sales_order_number,
    order_id_in_source,
    order_created_at,
    lower(status) as line_status,
    quantity,
    id_in_source,
    sku,
    model,
    title,
    upc,
    ean,
    coalesce(shipped_quantity, 0) as shipped_quantity,
    coalesce(rejected_quantity, 0) as rejected_quantity,
    _loaded_at as loaded_at,
    _partition as source_partition
from source
