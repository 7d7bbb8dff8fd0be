{{ config(schema='sync') }}
-- Sympla checkout questions in the unified question-answer shape (sync.sync_consent_questions):
-- one row per question asked on a ticket (participants[].custom_form, latest load), with its
-- answer. Answers are free text, so schema `sync`.
with participants as (
    select custom_form
    from {{ source('raw', 'sympla_participants') }}
    {{ latest_by_key(['id']) }}
)

select
    cast('sympla' as varchar) as provider,
    cast(q.id as varchar) as question_id,
    cast(q.name as varchar) as question_label,
    cast(q.value as varchar) as answer
from (select unnest(custom_form) as q from participants)
