-- The category mart (built in Snowflake by dbt) equals the lake's own daily_category aggregate
-- (built on Delta) summed over days. A row returned is a category where they differ.
with lake as (
    select category, sum(orders) as orders, sum(revenue) as revenue
    from {{ source('gold', 'daily_category') }}
    group by category
)

select
    coalesce(m.category, l.category) as category,
    m.orders as mart_orders,
    l.orders as lake_orders,
    m.revenue as mart_revenue,
    l.revenue as lake_revenue
from {{ ref('bi_revenue_by_category') }} as m
full outer join lake as l on l.category = m.category
where m.category is null
    or l.category is null
    or m.orders <> l.orders
    or abs(m.revenue - l.revenue) >= 0.005
