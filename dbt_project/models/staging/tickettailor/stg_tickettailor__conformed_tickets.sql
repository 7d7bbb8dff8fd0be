-- Ticket Tailor tickets in the unified ticket shape (intermediate.int_tickets), one row per issued
-- ticket. Ticket Tailor reports a ticket twice: inside its order (landed by order day) and from
-- /v1/issued_tickets (landed by event day, reloaded for late check-ins); the latest load wins.
-- A ticket counts as issued when its status is `valid` (`void` ones do not).
with versions as (
    select
        ticket_id, order_id, event_id, ticket_status, is_checked_in, attendee_email_hash,
        loaded_at, source_partition, 1 as source_rank
    from {{ ref('stg_tickettailor__issued_tickets') }}
    union all
    select
        ticket_id, order_id, event_id, ticket_status, is_checked_in, attendee_email_hash,
        loaded_at, source_partition, 2 as source_rank
    from {{ ref('stg_tickettailor__order_issued_tickets') }}
),

latest as (
    select *
    from versions
    qualify row_number() over (
        partition by ticket_id order by loaded_at desc, source_partition desc, source_rank
    ) = 1
)

select
    cast('tickettailor' as varchar) as provider,
    cast(ticket_id as varchar) as ticket_id,
    cast(order_id as varchar) as order_id,
    cast(event_id as varchar) as event_id,
    cast(ticket_status as varchar) as status,
    cast(ticket_status = 'valid' as boolean) as counts_as_issued,
    cast(is_checked_in as boolean) as is_checked_in,
    -- Ticket Tailor does not report when a ticket was checked in.
    cast(null as timestamptz) as checked_in_at,
    cast(attendee_email_hash as varchar) as attendee_email_hash,
    cast(loaded_at as timestamptz) as loaded_at,
    cast(source_partition as date) as source_partition
from latest
