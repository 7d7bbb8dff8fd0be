-- Every checkout question label seen, per provider, and whether it is taken as the consent
-- question (macros/consent.sql): what an operator reviews before pinning MARQUEE_CONSENT_LABEL.
-- Labels only, with counts: no answer and no person.
with tickettailor_orders as (
    select buyer_custom_questions
    from {{ source('raw', 'tickettailor_orders') }}
    {{ latest_by_key(['id']) }}
),

sympla_participants as (
    select custom_form
    from {{ source('raw', 'sympla_participants') }}
    {{ latest_by_key(['id']) }}
),

tickettailor as (
    select
        'tickettailor' as provider,
        cast(null as varchar) as question_id,
        q.question as question_label,
        q.answer as answer
    from (select unnest(buyer_custom_questions) as q from tickettailor_orders)
),

sympla as (
    select
        'sympla' as provider,
        cast(q.id as varchar) as question_id,
        q.name as question_label,
        q.value as answer
    from (select unnest(custom_form) as q from sympla_participants)
),

questions as (
    select * from tickettailor
    union all
    select * from sympla
)

select
    provider,
    question_id,
    question_label,
    {{ is_consent_question('question_label', 'question_id') }} as is_consent_question,
    count(*) filter (where {{ is_answered('answer') }}) as answers,
    count(*) filter (where {{ is_yes_answer('answer') }}) as yes_answers
from questions
where question_label is not null
group by all
order by provider, question_label, question_id
