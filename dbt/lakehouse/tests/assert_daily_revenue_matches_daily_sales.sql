-- Two gold paths agree day by day: the daily mart (from the star's fact) and the medallion
-- pipeline's own gold_daily_sales (from silver orders). A row returned is a day where they differ.
select
    coalesce(m.order_date, d.order_date) as order_date,
    m.orders as mart_orders,
    d.orders as daily_sales_orders,
    m.revenue as mart_revenue,
    d.revenue as daily_sales_revenue
from {{ ref('bi_daily_revenue') }} as m
full outer join {{ source('gold', 'daily_sales') }} as d on d.order_date = m.order_date
where m.order_date is null
    or d.order_date is null
    or m.orders <> d.orders
    or abs(m.revenue - d.revenue) >= 0.005
