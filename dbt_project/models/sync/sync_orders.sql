-- Orders as the reverse sync sends them to Cymbal and Cordial: one row per (provider, order_id),
-- every status. Status, revenue and money come from int_orders (the one definition the marts use
-- too); the buyer's contact details from the providers' conformed buyers models
-- (stg_<provider>__conformed_buyers). Amounts are exact minor units; `currency_exponent` says how
-- to show them in major units (the provider's own, when its conformed orders state one, e.g.
-- Ticket Tailor's base_multiplier when it is a power of ten; else the ISO-4217 table).
--
-- `sync_problem` names why a row must not be synced (negative money, a currency code that is not
-- ISO-4217); the sync skips those rows and the WARN check on this column counts them.
with buyers as (
    {{ union_providers('buyers', [
        'provider', 'order_id', 'email', 'phone', 'first_name', 'last_name', 'postal_code',
        'consent_answer',
    ]) }}
),

multipliers as (
    select provider, order_id, provider_currency_exponent as exponent
    from (
        {{ union_providers('orders', ['provider', 'order_id', 'provider_currency_exponent']) }}
    )
),

negative_items as (
    select distinct order_key from {{ ref('sync_order_items') }} where total_cents < 0
),

orders as (
    select
        o.provider || ':' || o.order_id as order_key,
        o.provider,
        o.order_id,
        {{ clean_text('o.event_id') }} as event_id,
        coalesce({{ clean_text('o.event_name') }}, e.event_name) as event_name,
        o.status,
        o.counts_as_revenue,
        o.currency,
        c.minor_unit_exponent as iso_exponent,
        coalesce(m.exponent, c.minor_unit_exponent) as currency_exponent,
        o.created_at,
        o.gross_cents as total_cents,
        o.tax_cents,
        o.refunded_cents,
        o.net_cents,
        {{ clean_text('o.campaign_tag_raw') }} as campaign_tag,
        b.email,
        b.phone,
        b.first_name,
        b.last_name,
        b.postal_code,
        b.consent_answer
    from {{ ref('int_orders') }} as o
    left join buyers as b on b.provider = o.provider and b.order_id = o.order_id
    left join multipliers as m on m.provider = o.provider and m.order_id = o.order_id
    left join {{ ref('currencies') }} as c on c.currency = o.currency
    left join {{ ref('int_events') }} as e on e.provider = o.provider and e.event_id = o.event_id
)

select
    orders.* exclude (iso_exponent),
    case
        when iso_exponent is null then 'currency ' || coalesce(currency, 'NULL') || ' is not an ISO-4217 code'
        when total_cents < 0 or refunded_cents < 0 or tax_cents < 0 then 'negative money'
        when order_key in (select order_key from negative_items) then 'negative money in a line item'
    end as sync_problem,
    case when event_id is not null then provider || ':' || event_id end as event_key
from orders
