-- One row per Ticket Tailor issued ticket from GET /v1/issued_tickets (carries late check-ins).
with source as (
    select * from {{ source('raw', 'tickettailor_issued_tickets') }}
    {{ latest_by_key(['id']) }}
)

select
    id as ticket_id,
    order_id,
    event_id,
    ticket_type_id,
    lower(status) as ticket_status,
    coalesce(checked_in, false) as is_checked_in,
    description as ticket_description,
    {{ pii_hash('email', 'email') }} as attendee_email_hash,
    source as ticket_source,
    created_at,
    updated_at,
    voided_at,
    event_start_at as event_starts_at,
    _loaded_at as loaded_at,
    _partition as source_partition
from source
