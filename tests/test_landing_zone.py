"""The drop zone: files land with exactly the defects it counts, and its ground truth is the generator's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from expert.runtime.data import EcommerceWorld
from expert.runtime.landing_zone import arrive, expected_orders, land_files, orders_differing

ADVANCES = {"placed": "shipped", "shipped": "delivered"}


def test_landed_lines_match_the_counts(workdir: Path) -> None:
    world = EcommerceWorld(2_000, seed=5)
    landing = land_files(world, workdir, 5, batches=2, bad_line_rate=0.01, status_advances=ADVANCES)
    order_lines = [
        line
        for path in sorted((landing.source_dir / "orders").glob("*.csv"))
        for line in path.read_text().splitlines()[1:]
    ]
    assert len(order_lines) == landing.orders_delivered + landing.orders_truncated
    truncated = [line for line in order_lines if line.count(",") != 8]
    assert len(truncated) == landing.orders_truncated >= 2, "at least one truncated line per file"
    later = pd.read_csv(landing.source_dir / "orders_later" / "batch=002.csv")
    assert len(later) == len(landing.status_updates) > 0
    assert set(later["status"]) <= set(ADVANCES.values())


def test_same_seed_same_landing(workdir: Path) -> None:
    world = EcommerceWorld(1_000, seed=3)
    first = land_files(world, workdir / "a", 3, batches=2, bad_line_rate=0.02, status_advances=ADVANCES)
    again = land_files(world, workdir / "b", 3, batches=2, bad_line_rate=0.02, status_advances=ADVANCES)
    for name in ("batch=000.csv", "batch=001.csv"):
        assert (first.source_dir / "orders" / name).read_bytes() == (again.source_dir / "orders" / name).read_bytes()
    pd.testing.assert_frame_equal(first.status_updates, again.status_updates)


def test_arrive_copies_into_the_inbox(workdir: Path) -> None:
    landing = land_files(EcommerceWorld(1_000), workdir, 1, batches=2, bad_line_rate=0.01, status_advances=ADVANCES)
    arrive(landing, "orders", ["batch=002.csv"], folder="orders_later")
    assert [p.name for p in (landing.inbox / "orders").iterdir()] == ["batch=002.csv"]


def test_expected_orders_keep_the_latest_version_and_differences_are_counted() -> None:
    world = EcommerceWorld(1_000, seed=9)
    base = expected_orders(world)
    assert base["order_id"].is_unique
    update = base.iloc[[0]].copy()
    update["status"] = "delivered"
    update["updated_at"] = update["updated_at"] + pd.Timedelta(days=1)
    latest = expected_orders(world, update)
    assert latest.loc[latest["order_id"] == update["order_id"].iloc[0], "status"].item() == "delivered"
    loaded = base.rename(columns=str.upper)
    assert orders_differing(loaded, base) == 0
    assert orders_differing(loaded, latest) == 1
    assert orders_differing(loaded.iloc[1:], base) == 1, "a missing order counts as a difference"
