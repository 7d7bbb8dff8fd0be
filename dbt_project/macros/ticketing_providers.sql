{#-
  Every ticketing provider's conformed model of one shape, one after the other (`union all`).

  A ticketing provider maps its own staging models to the unified shapes in its own folder,
  models/staging/<provider>/stg_<provider>__conformed_<shape>.sql (orders, events, tickets,
  order_items, ticket_days, buyers, question_answers); the shared models (intermediate/, sync/,
  marts/attendance) read them only through this macro, over the one list of providers declared in
  dbt_project.yml (`vars: ticketing_providers`). So a new ticketing provider is its conformed models
  plus one entry in that list (dbt_project/README.md, "Adding a provider to the marts").

  The refs are resolved when dbt parses the project, so every provider's conformed model is a
  dependency of the shared model in the manifest (and upstream of it in Dagster's lineage).

  `columns` are selected by name, in the order given: `union all` matches columns by position, and
  a conformed model's enforced contract (in its provider's _<provider>__models.yml) fixes the names
  and types of a view's columns but not their order.
-#}
{% macro union_providers(shape, columns) -%}
    {%- set providers = var('ticketing_providers') -%}
    {%- if providers is string or providers | length == 0 -%}
        {{ exceptions.raise_compiler_error("vars.ticketing_providers (dbt_project.yml) must be a non-empty list of provider names, e.g. ['tickettailor', 'sympla']") }}
    {%- endif -%}
    {%- for provider in providers %}
    select {{ columns | join(', ') }}
    from {{ ref('stg_' ~ provider ~ '__conformed_' ~ shape) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}

