select
    p.category,
    count(*) as orders,
    sum(s.amount) as revenue
from {{ ref('stg_sales') }} as s
inner join {{ ref('stg_products') }} as p on p.product_id = s.product_id
group by p.category
