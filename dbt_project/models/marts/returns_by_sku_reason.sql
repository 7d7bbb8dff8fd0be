-- Cymbio merchandise returns, one row per (sku, reason_code). Quantities are units, not money.
with lines as (
    select
        coalesce(nullif(trim(l.sku), ''), '(none)') as sku,
        r.reason_code,
        l.return_id,
        l.ordered_quantity,
        l.returned_quantity,
        r.created_at
    from {{ ref('stg_cymbio__return_lines') }} as l
    inner join {{ ref('stg_cymbio__returns') }} as r on r.return_id = l.return_id
),

titles as (
    select sku, min(title) as product_title
    from {{ ref('stg_cymbio__variants') }}
    where sku is not null
    group by sku
)

select
    lines.sku,
    lines.reason_code,
    titles.product_title,
    cast(count(distinct lines.return_id) as bigint) as returns,
    cast(count(*) as bigint) as return_lines,
    cast(sum(lines.returned_quantity) as bigint) as returned_quantity,
    cast(sum(lines.ordered_quantity) as bigint) as ordered_quantity,
    min(lines.created_at) as first_returned_at,
    max(lines.created_at) as last_returned_at
from lines
left join titles on titles.sku = lines.sku
group by lines.sku, lines.reason_code, titles.product_title
