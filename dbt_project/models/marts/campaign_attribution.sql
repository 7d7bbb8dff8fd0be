-- One row per (campaign_id, currency), from each campaign's latest analytics snapshot.
-- Every campaign has a row in its own currency_code (zeros when nothing is attributed), plus one
-- row per other currency its attributed orders were paid in. Cymbal's own figure
-- (reported_revenue_cents) sits only on the campaign-currency row: currencies are never mixed.
with campaigns as (
    select * from {{ ref('stg_cymbal__campaign_analytics') }}
),

attributed as (
    select
        campaign_id,
        currency,
        count(*) as attributed_orders,
        sum(gross_cents) as attributed_revenue_cents
    from {{ ref('int_order_campaigns') }}
    group by campaign_id, currency
),

campaign_currencies as (
    select campaign_id, currency from campaigns
    union
    select campaign_id, currency from attributed
)

select
    c.campaign_id,
    c.campaign_name,
    c.channel,
    cc.currency,
    c.sent_at,
    cast(c.links_clicked as bigint) as links_clicked,
    cast(case when cc.currency = c.currency then c.attributed_revenue_cents end as bigint)
        as reported_revenue_cents,
    cast(coalesce(a.attributed_orders, 0) as bigint) as attributed_orders,
    cast(coalesce(a.attributed_revenue_cents, 0) as bigint) as attributed_revenue_cents,
    case
        when coalesce(c.links_clicked, 0) > 0
            then cast(coalesce(a.attributed_orders, 0) as double) / cast(c.links_clicked as double)
    end as conversion_rate,
    c.snapshot_date
from campaign_currencies as cc
inner join campaigns as c on c.campaign_id = cc.campaign_id
left join attributed as a on a.campaign_id = cc.campaign_id and a.currency = cc.currency
