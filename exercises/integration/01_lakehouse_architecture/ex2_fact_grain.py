"""Exercise integration/01.2 · The sales fact at order grain: join each order to its latest payment only.

The gold star of integration/01 has a sales fact at ORDER grain: one row per order, whatever the
payment provider sent. Silver payments hold every attempt the provider reported: a failed attempt
and its successful retry, a refund after a capture, two attempts in the same second, an earlier
attempt delivered late (a higher PAYMENT_ID, an older PAID_TS). Orders whose payment has not
arrived yet are still orders.

Your task: return the SELECT that builds the fact from the tables `orders` and `payments`, so that
- it has one row per order of `orders`, none lost and none repeated (the payment join fans out nothing),
- each row carries ORDER_ID, ORDER_DATE, CUSTOMER_ID, PRODUCT_ID, QUANTITY, AMOUNT and
  ORDER_STATUS (the order's STATUS) from `orders`, unchanged,
- PAYMENT_METHOD and PAYMENT_STATUS come from the order's latest payment: the highest PAID_TS,
  ties broken by the highest PAYMENT_ID,
- an order without any payment has PAYMENT_METHOD 'none' and PAYMENT_STATUS 'missing'.

Columns of `orders`: ORDER_ID, ORDER_DATE, CUSTOMER_ID, PRODUCT_ID, QUANTITY, AMOUNT, STATUS, ORDER_TS.
Columns of `payments`: PAYMENT_ID, ORDER_ID, METHOD, AMOUNT, STATUS, PAID_TS.
The check runs your SELECT in Snowflake; the lesson runs the same query in Spark SQL, so window
functions in a subquery carry over to both engines.

Check it: expert check integration/01.2
"""


def fact_sales_sql(orders: str, payments: str) -> str:
    """The gold fact: one row per order, with its latest payment's method and status."""
    # TODO: an order with several payments comes out several times, and revenue grows with it.
    # Rank each order's payments (latest PAID_TS first, then the highest PAYMENT_ID) and join only
    # the first one.
    return f"""SELECT o.ORDER_ID, o.ORDER_DATE, o.CUSTOMER_ID, o.PRODUCT_ID, o.QUANTITY, o.AMOUNT,
       o.STATUS AS ORDER_STATUS,
       COALESCE(p.METHOD, 'none') AS PAYMENT_METHOD, COALESCE(p.STATUS, 'missing') AS PAYMENT_STATUS
FROM {orders} o LEFT JOIN {payments} p ON p.ORDER_ID = o.ORDER_ID"""
