"""Exercise integration/04.1 · A data product that keeps its contract: pass every quality rule, quarantine the rest.

The orders domain of integration/04 publishes `orders.products.orders` under its contract
(expert/integration/contracts/orders/orders.odcs.yaml). The platform's publish gate profiles the
candidate and refuses it unless every quality rule of the contract passes:
  order_id_not_null (no NULL order_id), order_id_unique (no order_id twice),
  status_known (status is one of placed, shipped, delivered, returned),
  orders_not_empty (at least one row), amount_is_price_times_quantity (amount = unit_price × quantity).
The raw feed breaks them the way feeds do: orders without a key, redelivered copies of an
order, statuses the contract does not know, amounts that do not add up.

Your task: from `raw` (the contract's columns order_id, customer_id, product_id, quantity,
unit_price, amount, status, order_ts, already cast to the contract's types), return
`(product, quarantine)` so that
- `product` has exactly the contract's columns and holds every order that satisfies every rule,
  exactly once (a redelivered copy is the same order: keep one copy),
- `quarantine` holds every row kept out for breaking a rule, with the raw columns plus
  `failed_rule`: the id of the first rule it breaks, checked in this order: order_id_not_null,
  status_known, amount_is_price_times_quantity (a bad row is kept aside, never repaired),
- no row disappears silently: raw rows = product rows + quarantined rows + redelivered copies.

Check it: expert check integration/04.1
"""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

KNOWN_STATUSES = ("placed", "shipped", "delivered", "returned")


def orders_product(raw: DataFrame) -> tuple[DataFrame, DataFrame]:
    """The orders product the gate accepts, and the rows it had to keep out."""
    # TODO: this cleaning only fixes keys and redeliveries, so unknown statuses and amounts that are
    # not unit_price × quantity reach the product and the gate refuses it. Tag each row with the
    # first rule it breaks (F.when chains), quarantine the tagged rows, publish the rest.
    product = raw.where("order_id IS NOT NULL").dropDuplicates(["order_id"])
    quarantine = raw.where("order_id IS NULL").withColumn("failed_rule", F.lit("order_id_not_null"))
    return product, quarantine
