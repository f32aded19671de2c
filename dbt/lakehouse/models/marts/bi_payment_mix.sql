select
    payment_method,
    payment_status,
    count(*) as orders,
    sum(amount) as amount
from {{ ref('stg_sales') }}
group by payment_method, payment_status
