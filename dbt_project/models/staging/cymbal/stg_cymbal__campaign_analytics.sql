-- One row per Cymbal campaign: its latest daily analytics snapshot.
with source as (
    select * from {{ source('raw', 'cymbal_campaign_analytics') }}
    {{ latest_by_key(['id']) }}
)

select
    id as campaign_id,
    name as campaign_name,
    lower(type) as channel,
    sent_at,
    num_recipients as recipients,
    num_delivered as delivered,
    num_opened as opened,
    coalesce(num_links_clicked, 0) as links_clicked,
    num_unsubscribed as unsubscribed,
    cast(attributed_revenue as bigint) as attributed_revenue_cents,
    upper(coalesce(currency_code, 'USD')) as currency,
    {{ normalise_campaign_tag('id') }} as campaign_tag,
    _partition as snapshot_date,
    _loaded_at as loaded_at
from source
