-- One row per Sympla order (latest load). Money: decimal reais -> integer centavos, exactly.
with source as (
    select * from {{ source('raw', 'sympla_orders') }}
    {{ latest_by_key(['id']) }}
)

select
    id as order_id,
    event_id,
    order_status as order_status_raw,
    {{ sympla_order_status('order_status') }} as order_status,
    -- Sympla sells in reais only; the API has no currency field.
    'BRL' as currency,
    {{ to_minor_units('order_total_sale_price', "'BRL'") }} as order_total_sale_price_cents,
    {{ to_minor_units('order_total_net_value', "'BRL'") }} as order_total_net_value_cents,
    order_date as created_at,
    cast(timezone('UTC', order_date) as date) as order_date,
    updated_date as updated_at,
    approved_date as approved_at,
    discount_code,
    transaction_type,
    {{ pii_hash('buyer_email', 'email') }} as buyer_email_hash,
    invoice_doc_type,
    -- The document number (CPF/CNPJ) is only in the raw JSON; it never leaves raw unhashed.
    {{ pii_hash("json_extract_string(_raw, '$.invoice_info.doc_number')", 'digits') }} as buyer_document_hash,
    utm_source,
    utm_medium,
    utm_campaign,
    utm_term,
    utm_content,
    {{ normalise_campaign_tag('utm_campaign') }} as campaign_tag,
    _loaded_at as loaded_at,
    _partition as source_partition
from source
