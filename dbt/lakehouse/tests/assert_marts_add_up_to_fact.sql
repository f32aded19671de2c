-- Every mart adds up to the fact's revenue: no join lost or duplicated an order.
-- A row returned is a mart whose total differs from the fact's by a cent or more.
with fact as (
    select sum(amount) as revenue from {{ ref('stg_sales') }}
),

marts as (
    select 'bi_daily_revenue' as mart, sum(revenue) as revenue from {{ ref('bi_daily_revenue') }}
    union all
    select 'bi_revenue_by_category', sum(revenue) from {{ ref('bi_revenue_by_category') }}
    union all
    select 'bi_revenue_by_segment', sum(revenue) from {{ ref('bi_revenue_by_segment') }}
    union all
    select 'bi_payment_mix', sum(amount) from {{ ref('bi_payment_mix') }}
)

select marts.mart, marts.revenue as mart_revenue, fact.revenue as fact_revenue
from marts
cross join fact
where abs(marts.revenue - fact.revenue) >= 0.005
