-- Every checkout question label seen, per provider, and whether it is taken as the consent
-- question (macros/consent.sql): what an operator reviews before pinning MARQUEE_CONSENT_LABEL.
-- Labels only, with counts: no answer and no person. Each provider lists the questions asked and
-- their answers in its own staging folder (stg_<provider>__conformed_question_answers); this model
-- unions the providers listed in dbt_project.yml (vars.ticketing_providers).
with questions as (
    {{ union_providers('question_answers', ['provider', 'question_id', 'question_label', 'answer']) }}
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
