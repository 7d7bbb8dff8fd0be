-- Contacts the reverse sync may send: every reachable buyer whose LATEST EXPLICIT answer to the
-- consent question is yes (macros/consent.sql says which question and what an answer is).
--
-- A buyer is identified by their email (trimmed, lower case), else their phone (digits and +), across
-- orders and providers. Their orders are read in creation order (then by namespaced order id); an
-- order answered yes is an explicit yes, answered anything else an explicit no, and an order without
-- the question or with a blank answer changes nothing. So yes-then-no is not a contact, no-then-yes
-- is, yes-then-unanswered still is, and a buyer who never answered is not.
--
-- Details come from the order that gave the latest yes, and `consent_answered_at` is that order's
-- creation time: the reverse sync sends an opt-in `true` only when that answer is newer than its
-- last successful send of the contact (README, "Marketing consent").
with answers as (
    select
        o.order_key,
        o.created_at,
        o.email,
        o.phone,
        o.first_name,
        o.last_name,
        o.postal_code,
        o.consent_answer,
        case
            when o.email is not null then 'email:' || lower(o.email)
            when o.phone is not null and regexp_replace(o.phone, '[^0-9+]', '', 'g') <> ''
                then 'phone:' || regexp_replace(o.phone, '[^0-9+]', '', 'g')
        end as contact_identity
    from {{ ref('sync_orders') }} as o
    where o.consent_answer is not null
),

latest as (
    select *
    from answers
    where contact_identity is not null
    qualify row_number() over (partition by contact_identity order by created_at desc, order_key desc) = 1
)

select
    contact_identity,
    email,
    phone,
    first_name,
    last_name,
    postal_code,
    created_at as consent_answered_at,
    order_key as consent_order_key
from latest
where consent_answer
