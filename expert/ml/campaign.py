"""The shift integration/03's model meets after launch: view-only traffic from a display campaign.

Why a separate generator: drift must be real and known. From `start_day`, a campaign sends extra
view-only sessions to a hash-chosen share of customers. It changes what the features look like,
not who buys: nobody's hidden propensity moves, which is exactly why a model that learnt "views
mean buyers" degrades. The transformation is seeded and deterministic: the campaign's visitors are
chosen by hash, their visit times are uniform over the campaign days, and no purchase changes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from expert.ml.split import bucket
from expert.runtime.data import DAYS, EPOCH, EcommerceWorld


def campaign_traffic(world: EcommerceWorld, *, start_day: int, share: float, views_per_day: float) -> pd.DataFrame:
    """View events the campaign adds from `start_day`, for `share` of the customers, in the world's event schema."""
    rng = np.random.default_rng([world.seed, *b"campaign"])
    customers = world.customers["customer_id"].to_numpy()
    reached = customers[[bucket(c, "campaign") < share for c in customers]]
    visits = rng.poisson(views_per_day * (DAYS - start_day), len(reached))
    customer_ids = np.repeat(reached, visits)
    products = world.products
    product_idx = rng.integers(0, len(products), len(customer_ids))
    offsets = rng.integers(start_day * 86_400, DAYS * 86_400, len(customer_ids))
    events = world.events
    return pd.DataFrame(
        {
            "event_id": events["event_id"].max() + 1 + np.arange(len(customer_ids), dtype=np.int64),
            "session_id": events["session_id"].max() + 1 + np.arange(len(customer_ids), dtype=np.int64),
            "customer_id": customer_ids,
            "product_id": products["product_id"].to_numpy()[product_idx],
            "event_type": "view",
            "channel": "web",
            "price": products["price"].to_numpy()[product_idx],
            "event_ts": pd.to_datetime(EPOCH) + pd.to_timedelta(offsets, unit="s"),
        }
    )
