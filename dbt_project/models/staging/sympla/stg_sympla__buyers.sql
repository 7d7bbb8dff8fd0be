{{ config(schema='sync') }}
-- One row per Sympla order (latest load): the buyer's contact details and their answer to the
-- consent question. Sympla asks its checkout questions per ticket (participants[].custom_form), so
-- the order's answer is the one on the buyer's own ticket(s) (participant email = buyer email); a
-- guest's answer never speaks for the buyer. It is only known once the event's participants have
-- landed (under the event's start day). Personal data, for the reverse sync only (schema `sync`).
with orders as (
    select * from {{ source('raw', 'sympla_orders') }}
    {{ latest_by_key(['id']) }}
),

participants as (
    select * from {{ source('raw', 'sympla_participants') }}
    {{ latest_by_key(['id']) }}
),

buyer_tickets as (
    select
        o.id as order_id,
        {{ consent_answer('p.custom_form', 'name', 'value', 'id') }} as consent_answer
    from orders as o
    inner join participants as p
        on p.order_id = o.id
        and lower({{ clean_text('p.email') }}) = lower({{ clean_text('o.buyer_email') }})
),

answers as (
    select
        order_id,
        case
            when count(*) filter (where consent_answer) > 0 then true
            when count(*) filter (where not consent_answer) > 0 then false
        end as consent_answer
    from buyer_tickets
    group by order_id
)

select
    o.id as order_id,
    {{ clean_text('o.buyer_email') }} as email,
    cast(null as varchar) as phone,
    {{ clean_text('o.buyer_first_name') }} as first_name,
    {{ clean_text('o.buyer_last_name') }} as last_name,
    cast(null as varchar) as postal_code,
    a.consent_answer
from orders as o
left join answers as a on a.order_id = o.id
