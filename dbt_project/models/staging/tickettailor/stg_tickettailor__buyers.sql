{{ config(schema='sync') }}
-- One row per Ticket Tailor order (latest load): the buyer's contact details and their answer to
-- the consent question on that order. Personal data, for the reverse sync only: it lives in
-- schema `sync`, which is never published to the analysts' catalog.
with source as (
    select * from {{ source('raw', 'tickettailor_orders') }}
    {{ latest_by_key(['id']) }}
)

select
    id as order_id,
    {{ clean_text('buyer_email') }} as email,
    {{ clean_text('buyer_phone') }} as phone,
    {{ clean_text('buyer_first_name') }} as first_name,
    {{ clean_text('buyer_last_name') }} as last_name,
    {{ clean_text('buyer_postal_code') }} as postal_code,
    {{ consent_answer('buyer_custom_questions', 'question', 'answer') }} as consent_answer
from source
