{{ config(schema='sync') }}
-- Ticket Tailor buyers in the unified buyer shape (sync.sync_orders), one row per order: contact
-- details and the consent answer. Personal data, so schema `sync` (never published to analysts).
select
    cast('tickettailor' as varchar) as provider,
    cast(order_id as varchar) as order_id,
    cast(email as varchar) as email,
    cast(phone as varchar) as phone,
    cast(first_name as varchar) as first_name,
    cast(last_name as varchar) as last_name,
    cast(postal_code as varchar) as postal_code,
    cast(consent_answer as boolean) as consent_answer
from {{ ref('stg_tickettailor__buyers') }}
