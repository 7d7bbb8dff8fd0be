{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['provider', 'ticket_id'],
        pre_hook="{{ delete_window('source_partition') }}",
    )
}}
-- Tickets across providers, one row per (provider, ticket_id): Ticket Tailor issued tickets and
-- Sympla participants (one participant = one ticket).
-- Ticket Tailor reports a ticket twice: inside its order (landed by order day) and from
-- /v1/issued_tickets (landed by event day, reloaded for late check-ins); the latest load wins.
-- Incremental on source_partition, the raw partition day of the version kept.
with tickettailor_versions as (
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

tickettailor as (
    select
        'tickettailor' as provider,
        ticket_id,
        order_id,
        event_id,
        ticket_status as status,
        ticket_status = 'valid' as counts_as_issued,
        is_checked_in,
        cast(null as timestamptz) as checked_in_at,
        attendee_email_hash,
        loaded_at,
        source_partition
    from tickettailor_versions
    qualify row_number() over (
        partition by ticket_id order by loaded_at desc, source_partition desc, source_rank
    ) = 1
),

sympla as (
    select
        'sympla' as provider,
        participant_id as ticket_id,
        order_id,
        event_id,
        order_status as status,
        order_status = 'approved' as counts_as_issued,
        is_checked_in,
        checked_in_at,
        attendee_email_hash,
        loaded_at,
        source_partition
    from {{ ref('stg_sympla__participants') }}
),

unioned as (
    select * from tickettailor
    union all
    select * from sympla
)

select * from unioned
where {{ incremental_window_filter('source_partition') }}
