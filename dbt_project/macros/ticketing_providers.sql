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

{#-
  The raw assets whose partition day is an event's start day and whose file holds that event's
  complete ticket list (Ticket Tailor `tickettailor_issued_tickets`, Sympla `sympla_participants`),
  as a SQL list of strings for raw.landed_partitions.asset (marts/attendance.sql).

  A provider says which of its raw tables that is in its own _<provider>__sources.yml, with
  `meta: {marquee: {event_tickets: true}}` on the table; the provider is the staging folder the
  table is declared in. Every provider in vars.ticketing_providers must declare one.
-#}
{% macro event_ticket_assets() -%}
    {%- if not execute -%}
        {{ return("null") }}
    {%- endif -%}
    {%- set providers = var('ticketing_providers') -%}
    {%- set ns = namespace(assets=[], missing=[]) -%}
    {%- for provider in providers -%}
        {%- set found = [] -%}
        {%- for node in graph.sources.values() -%}
            {%- if node.fqn[2] == provider and (node.meta.get('marquee') or {}).get('event_tickets') -%}
                {%- do found.append(node.name) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if not found -%}
            {%- set ns.missing = ns.missing + [provider] -%}
        {%- endif -%}
        {%- set ns.assets = ns.assets + (found | sort) -%}
    {%- endfor -%}
    {%- if ns.missing -%}
        {{ exceptions.raise_compiler_error("no raw table with meta.marquee.event_tickets in models/staging/<provider>/ for ticketing provider(s) " ~ (ns.missing | join(', '))) }}
    {%- endif -%}
    {{ return("'" ~ (ns.assets | join("', '")) ~ "'") }}
{%- endmacro %}
