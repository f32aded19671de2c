select
    customer_id,
    country,
    city,
    segment
from {{ source('gold', 'dim_customer') }}
