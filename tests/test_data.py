"""The data generator: deterministic, scalable, and honest about the dirt it injects."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from expert.runtime.data import Dirt, EcommerceWorld


def test_same_seed_same_data_and_other_seed_other_data() -> None:
    a, b, c = EcommerceWorld(2_000, seed=7), EcommerceWorld(2_000, seed=7), EcommerceWorld(2_000, seed=8)
    for table in ("customers", "products", "events", "orders", "payments"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table))
    assert not a.events.equals(c.events)


def test_rows_knob_sets_event_count_and_scales_dimensions() -> None:
    small, large = EcommerceWorld(1_000), EcommerceWorld(20_000)
    assert len(small.events) == 1_000
    assert len(large.events) == 20_000
    assert len(large.customers) > len(small.customers)
    with pytest.raises(ValueError, match="at least 100"):
        EcommerceWorld(10)


def test_clickstream_funnel_and_orders_are_consistent() -> None:
    world = EcommerceWorld(5_000)
    events, orders = world.events, world.orders
    counts = events["event_type"].value_counts()
    assert counts["view"] > counts["cart"] > counts["purchase"] > 0
    assert len(orders) == counts["purchase"]
    assert events["event_id"].is_unique and events["event_ts"].is_monotonic_increasing
    assert set(orders["customer_id"]) <= set(world.customers["customer_id"])
    assert (orders["amount"] == (orders["unit_price"] * orders["quantity"]).round(2)).all()


def test_delivery_counts_every_defect_it_injects() -> None:
    world = EcommerceWorld(4_000, dirt=Dirt(duplicate_rate=0.05, null_key_rate=0.01, late_rate=0.03))
    delivered, report = world.deliver("events", "event_id", "event_ts")
    assert len(delivered) == report.delivered_rows == 4_000 + report.duplicates
    assert report.duplicates == 200 and report.null_keys == 40 and report.late == 120
    assert delivered["event_id"].isna().sum() == report.null_keys
    keyed = delivered.dropna(subset=["event_id"])
    assert keyed.duplicated().sum() == report.duplicates
    original = world.events.set_index("event_id")["event_ts"]
    late = delivered[delivered["event_id"].isin(report.late_ids)].drop_duplicates("event_id")
    shifted = original.loc[late["event_id"].astype(int)].to_numpy() - late["event_ts"].to_numpy()
    assert (shifted == pd.Timedelta(hours=3)).all()


def test_clean_dirt_delivers_exactly_the_clean_table() -> None:
    world = EcommerceWorld(1_000, dirt=Dirt.clean())
    delivered, report = world.deliver("orders", "order_id")
    pd.testing.assert_frame_equal(delivered, world.orders)
    assert (report.duplicates, report.null_keys, report.late) == (0, 0, 0)


def test_raw_landing_has_drift_and_counted_malformed_lines(tmp_path: Path) -> None:
    world = EcommerceWorld(3_000, dirt=Dirt(malformed_rate=0.01))
    reports = world.write_raw_landing(tmp_path, batches=3)
    parsed, broken, with_device = 0, 0, set()
    for path in sorted((tmp_path / "clickstream").glob("*.json")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                broken += 1
                continue
            parsed += 1
            if "device" in record:
                with_device.add(path.name)
    assert broken == reports["events"].malformed > 0
    assert parsed == reports["events"].delivered_rows
    assert with_device == {"batch=001.json", "batch=002.json"}
    orders = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / "orders").glob("*.csv")))
    assert len(orders) == reports["orders"].delivered_rows


def test_customer_snapshots_change_and_grow() -> None:
    snapshots = EcommerceWorld(4_000).customer_snapshots(3)
    assert len(snapshots[0]) < len(snapshots[1]) < len(snapshots[2])
    merged = snapshots[0].merge(snapshots[1], on="customer_id", suffixes=("_0", "_1"))
    changed = (merged["city_0"] != merged["city_1"]) | (merged["segment_0"] != merged["segment_1"])
    assert changed.any()
    assert (merged.loc[changed, "updated_at_1"] > merged.loc[changed, "updated_at_0"]).all()
