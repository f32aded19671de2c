select
    order_id,
    order_date,
    customer_id,
    product_id,
    quantity,
    amount,
    order_status,
    payment_method,
    payment_status,
    payment_status = 'captured' as is_captured
from {{ source('gold', 'fact_sales') }}
