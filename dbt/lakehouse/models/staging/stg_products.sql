select
    product_id,
    name as product_name,
    category,
    list_price
from {{ source('gold', 'dim_product') }}
