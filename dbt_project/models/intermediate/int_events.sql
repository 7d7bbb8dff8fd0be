-- Every ticketing event across providers, one row per (provider, event_id). Each provider maps its
-- events to the unified shape in its own staging folder (stg_<provider>__conformed_events); this
-- model unions the providers listed in dbt_project.yml (vars.ticketing_providers). An event Ticket
-- Tailor has sold tickets for but whose events snapshot is not loaded yet still appears, with the
-- name and start its orders carry (`from_snapshot` false); the reverse sync sends only events from
-- a snapshot.
{{ union_providers('events', [
    'provider', 'event_id', 'event_name', 'starts_at', 'ends_at', 'starts_at_local', 'event_status',
    'is_cancelled', 'venue_name', 'location', 'event_url', 'image_url', 'event_timezone',
    'from_snapshot',
]) }}
