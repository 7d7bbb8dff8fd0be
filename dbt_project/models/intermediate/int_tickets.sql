{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['provider', 'ticket_id'],
        pre_hook="{{ delete_window('source_partition') }}",
    )
}}
-- Tickets across providers, one row per (provider, ticket_id): Ticket Tailor issued tickets and
-- Sympla participants (one participant = one ticket). Each provider maps its tickets to the unified
-- shape in its own staging folder (stg_<provider>__conformed_tickets: which version of a ticket is
-- kept, and whether it counts as issued); this model unions the providers listed in
-- dbt_project.yml (vars.ticketing_providers).
-- Incremental on source_partition, the raw partition day of the version kept.
with unioned as (
    {{ union_providers('tickets', [
        'provider', 'ticket_id', 'order_id', 'event_id', 'status', 'counts_as_issued',
        'is_checked_in', 'checked_in_at', 'attendee_email_hash', 'loaded_at', 'source_partition',
    ]) }}
)

select * from unioned
where {{ incremental_window_filter('source_partition') }}
