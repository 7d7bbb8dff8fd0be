-- Sympla tickets in the unified ticket shape (intermediate.int_tickets): one participant is one
-- ticket, one row per participant (latest load). A ticket's status is its order's, and it counts
-- as issued when that order is approved.
select
    cast('sympla' as varchar) as provider,
    cast(participant_id as varchar) as ticket_id,
    cast(order_id as varchar) as order_id,
    cast(event_id as varchar) as event_id,
    cast(order_status as varchar) as status,
    cast(order_status = 'approved' as boolean) as counts_as_issued,
    cast(is_checked_in as boolean) as is_checked_in,
    cast(checked_in_at as timestamptz) as checked_in_at,
    cast(attendee_email_hash as varchar) as attendee_email_hash,
    cast(loaded_at as timestamptz) as loaded_at,
    cast(source_partition as date) as source_partition
from {{ ref('stg_sympla__participants') }}
