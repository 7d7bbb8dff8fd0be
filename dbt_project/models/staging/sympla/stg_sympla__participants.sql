-- One row per Sympla participant (one ticket each), latest load. Includes cancelled orders'.
with source as (
    select * from {{ source('raw', 'sympla_participants') }}
    {{ latest_by_key(['id']) }}
)

select
    cast(id as varchar) as participant_id,
    event_id,
    event_start_date as event_starts_at,
    order_id,
    order_status as order_status_raw,
    {{ sympla_order_status('order_status') }} as order_status,
    order_date as order_created_at,
    order_updated_date as order_updated_at,
    order_approved_date as order_approved_at,
    {{ pii_hash('email', 'email') }} as attendee_email_hash,
    -- A CPF asked in the custom form is a document number: hashed, never kept.
    {{ pii_hash("list_extract(list_filter(custom_form, lambda f: lower(f.name) like '%cpf%' or lower(f.name) like '%document%'), 1).value", 'digits') }} as attendee_document_hash,
    ticket_name,
    sector_name,
    {{ to_minor_units('ticket_sale_price', "'BRL'") }} as ticket_sale_price_cents,
    'BRL' as currency,
    checkin_id,
    coalesce(check_in, false) as is_checked_in,
    check_in_date as checked_in_at,
    ticket_created_at,
    ticket_updated_at,
    presentation_id,
    _loaded_at as loaded_at,
    _partition as source_partition
from source
