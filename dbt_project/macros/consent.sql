{#-
  Marketing consent: which checkout question is the consent question, and what an answer means.
  (DESIGN.md point 8; the README's "Marketing consent" section says the same for operators.)

  The consent question is named EXACTLY, never by a substring, because a substring takes
  "Tick if you do NOT want marketing emails" for consent:

    MARQUEE_CONSENT_LABEL = "<label>" | "id:<question id>", several separated by "|"
      e.g.  Marketing: keep me posted about future events by email|id:2

  Labels compare case-insensitively, with surrounding and repeated whitespace ignored. Question ids
  are Sympla's `custom_form[].id` (Ticket Tailor's questions carry no id).

  When MARQUEE_CONSENT_LABEL is unset, the questions whose label contains "marketing" and no
  negation (not, no, don't, never, unsubscribe, opt out, não, nao) are taken, so a fresh install
  works and a negated question is never consent. The labels seen, and which were taken, are in
  the model sync.sync_consent_questions and in the contact syncs' metadata: review them, then pin
  the exact labels.

  An answer is yes when it is yes / sim / true / 1 (any case, trimmed); any other non-blank answer
  is an explicit no; a null or blank answer is no answer at all.
-#}

{% macro consent_entries() -%}
    {%- set raw = env_var('MARQUEE_CONSENT_LABEL', '') -%}
    {%- set ns = namespace(labels=[], ids=[]) -%}
    {%- for part in raw.split('|') -%}
        {%- set entry = part | trim -%}
        {%- if entry.lower().startswith('id:') and entry[3:] | trim | length > 0 -%}
            {%- set ns.ids = ns.ids + [entry[3:] | trim] -%}
        {%- elif entry | length > 0 -%}
            {%- set ns.labels = ns.labels + [entry.lower().split() | join(' ')] -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return({'labels': ns.labels, 'ids': ns.ids, 'configured': (ns.labels or ns.ids) | length > 0}) }}
{%- endmacro %}

{#- The label as compared: lower case, whitespace trimmed and collapsed. -#}
{% macro consent_label_normalised(label_expr) -%}
    lower(trim(regexp_replace(cast({{ label_expr }} as varchar), '\s+', ' ', 'g')))
{%- endmacro %}

{#- SQL boolean, never NULL: this question (label, optional id) is the consent question. -#}
{% macro is_consent_question(label_expr, id_expr=none) -%}
    {%- set cfg = consent_entries() -%}
    coalesce(
    {%- if cfg.configured -%}
        (
            {{ consent_label_normalised(label_expr) }} in (
                {%- for l in cfg.labels %}'{{ l | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%}
                {%- if not cfg.labels %}null{% endif -%}
            )
            {%- if id_expr is not none and cfg.ids %}
            or cast({{ id_expr }} as varchar) in (
                {%- for i in cfg.ids %}'{{ i | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%}
            )
            {%- endif %}
        )
    {%- else -%}
        (
            {{ consent_label_normalised(label_expr) }} like '%marketing%'
            and not regexp_matches(
                {{ consent_label_normalised(label_expr) }},
                '(^|[^a-z])(not|no|don''t|dont|never|unsubscribe|opt[ -]?out|não|nao)([^a-z]|$)'
            )
        )
    {%- endif -%}
    , false)
{%- endmacro %}

{% macro is_yes_answer(answer_expr) -%}
    (lower(trim(cast({{ answer_expr }} as varchar))) in ('yes', 'sim', 'true', '1'))
{%- endmacro %}

{% macro is_answered(answer_expr) -%}
    (nullif(trim(cast({{ answer_expr }} as varchar)), '') is not null)
{%- endmacro %}

{#-
  One order's answer to the consent question, from a list of question structs: true (a consent
  question answered yes), false (answered anything else), NULL (not asked, or left blank).
  Several consent answers on one order: any yes is a yes.
-#}
{% macro consent_answer(list_expr, label_field, answer_field, id_field=none) -%}
    case
        when len(list_filter({{ list_expr }}, lambda q: {{ is_consent_question('q.' ~ label_field, ('q.' ~ id_field) if id_field else none) }}
                 and {{ is_yes_answer('q.' ~ answer_field) }})) > 0 then true
        when len(list_filter({{ list_expr }}, lambda q: {{ is_consent_question('q.' ~ label_field, ('q.' ~ id_field) if id_field else none) }}
                 and {{ is_answered('q.' ~ answer_field) }})) > 0 then false
    end
{%- endmacro %}
