-- One row per Cymbio catalog variant: the latest catalog snapshot that carried it.
with source as (
    select * from {{ source('raw', 'cymbio_variants') }}
    {{ latest_by_key(['id']) }}
)

select
    id as variant_id,
    sku,
    upc,
    ean,
    model,
    title,
    upper(currency) as currency,
    supplier_id,
    supplier_name,
    cast(retail_price as bigint) as retail_price_cents,
    cast(special_sale_price as bigint) as special_sale_price_cents,
    special_sale_price_start,
    special_sale_price_end,
    available_inventory,
    retailer_title,
    _partition as snapshot_date,
    _loaded_at as loaded_at
from source
