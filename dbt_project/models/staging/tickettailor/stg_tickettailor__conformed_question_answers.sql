{{ config(schema='sync') }}
-- Ticket Tailor checkout questions in the unified question-answer shape
-- (sync.sync_consent_questions): one row per question asked on an order (latest load), with the
-- buyer's answer. Ticket Tailor's questions carry no id. Answers are free text, so schema `sync`.
with orders as (
    select buyer_custom_questions
    from {{ source('raw', 'tickettailor_orders') }}
    {{ latest_by_key(['id']) }}
)

select
    cast('tickettailor' as varchar) as provider,
    cast(null as varchar) as question_id,
    cast(q.question as varchar) as question_label,
    cast(q.answer as varchar) as answer
from (select unnest(buyer_custom_questions) as q from orders)
