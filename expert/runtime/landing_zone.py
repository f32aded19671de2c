"""An upstream drop zone: order and clickstream files with counted defects, and their ground truth.

Why: a loader can only prove it lost nothing if it knows exactly how dirty its input was. This
module writes the files upstream systems drop (from `EcommerceWorld.write_raw_landing`), truncates
some order lines as a writer that crashed mid-line would, prepares a later file of order status
changes for CDC, and keeps every count in a `Landing`. `arrive` copies files into the inbox a
loader polls, as an upstream system would drop them there. `expected_orders` and
`expected_funnel` compute, in pandas and from the generator alone, what the loaded tables must hold.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from expert.runtime.data import EcommerceWorld, corrupt_lines


@dataclass(frozen=True)
class Landing:
    """The files upstream systems dropped, and the generator's ground truth about their defects."""

    source_dir: Path
    inbox: Path
    orders_delivered: int
    orders_null_keys: int
    orders_truncated: int
    events_clean: int
    events_delivered: int
    events_null_keys: int
    events_malformed: int
    status_updates: pd.DataFrame

    def ground_truth(self) -> list[dict[str, Any]]:
        """One row per feed: rows delivered, null keys, truncated lines (what the loader must account for)."""
        return [
            {"feed": "orders CSV", "rows delivered": self.orders_delivered, "null keys": self.orders_null_keys,
             "truncated lines": self.orders_truncated},
            {"feed": "clickstream JSON", "rows delivered": self.events_delivered,
             "null keys": self.events_null_keys, "truncated lines": self.events_malformed},
        ]  # fmt: skip


def land_files(
    world: EcommerceWorld,
    workdir: Path,
    seed: int,
    *,
    batches: int,
    bad_line_rate: float,
    status_advances: Mapping[str, str],
) -> Landing:
    """Write the drop zone, truncate some order lines (at least one per file), and a later status-update file.

    The update file is batch number `batches` of `orders_later/`: it arrives after the first loads.
    """
    source_dir = workdir / "source"
    reports = world.write_raw_landing(source_dir, batches=batches)
    rng = np.random.default_rng([seed, 101])
    truncated = 0
    for path in sorted((source_dir / "orders").glob("batch=*.csv")):
        header, *rows = path.read_text().splitlines()
        rate = max(bad_line_rate, 1 / max(1, len(rows)))
        rows, broken = corrupt_lines(rows, rate, rng)
        truncated += broken
        path.write_text("\n".join([header, *rows]) + "\n")
    updates = status_updates(world, rng, status_advances)
    header = ",".join(updates.columns)
    lines = updates.to_csv(index=False, header=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    (source_dir / "orders_later").mkdir(parents=True, exist_ok=True)
    (source_dir / "orders_later" / f"batch={batches:03d}.csv").write_text(header + "\n" + lines)
    inbox = workdir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    orders, events = reports["orders"], reports["events"]
    return Landing(
        source_dir=source_dir,
        inbox=inbox,
        orders_delivered=orders.delivered_rows,
        orders_null_keys=orders.null_keys,
        orders_truncated=truncated,
        events_clean=events.clean_rows,
        events_delivered=events.delivered_rows,
        events_null_keys=events.null_keys,
        events_malformed=events.malformed,
        status_updates=updates,
    )


def status_updates(world: EcommerceWorld, rng: np.random.Generator, advances: Mapping[str, str]) -> pd.DataFrame:
    """A third of the orders that can move on (e.g. placed → shipped) do so a day later: the changes CDC upserts."""
    orders = world.orders
    movable = orders[orders["status"].isin(list(advances))]
    chosen = movable.iloc[np.sort(rng.choice(len(movable), size=max(1, len(movable) // 3), replace=False))].copy()
    chosen["status"] = chosen["status"].map(advances)
    chosen["updated_at"] = chosen["updated_at"] + pd.Timedelta(days=1)
    return chosen.reset_index(drop=True)


def arrive(landing: Landing, source: str, names: Sequence[str], folder: str | None = None) -> None:
    """Files show up in the inbox the loader polls (from `folder` of the drop zone, `source` by default)."""
    target = landing.inbox / source
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(landing.source_dir / (folder or source) / name, target / name)


def expected_orders(world: EcommerceWorld, updates: pd.DataFrame | None = None) -> pd.DataFrame:
    """The latest version of every keyed order delivered (and of each update, when given)."""
    delivered, _ = world.deliver("orders", "order_id")
    frame = pd.concat([delivered.dropna(subset=["order_id"]), updates], ignore_index=True)
    frame["order_id"] = frame["order_id"].astype("int64")
    latest = frame.sort_values(["order_id", "updated_at"], kind="stable").drop_duplicates("order_id", keep="last")
    return latest.reset_index(drop=True)


def expected_funnel(world: EcommerceWorld) -> dict[str, int]:
    """Event types of the distinct keyed events delivered."""
    delivered, _ = world.deliver("events", "event_id", "event_ts")
    keyed = delivered.dropna(subset=["event_id"]).drop_duplicates("event_id")
    return {str(k): int(v) for k, v in keyed["event_type"].value_counts().items()}


def orders_differing(actual: pd.DataFrame, expected: pd.DataFrame) -> int:
    """Orders that differ between a loaded table and the ground truth on status, amount or updated_at
    (or exist on one side only). Column names are compared case-insensitively."""
    got = actual.rename(columns=str.lower)[["order_id", "status", "amount", "updated_at"]].copy()
    want = expected[["order_id", "status", "amount", "updated_at"]].copy()
    for frame in (got, want):
        frame["order_id"] = frame["order_id"].astype("int64")
        frame["amount"] = frame["amount"].astype(float).round(2)
        frame["updated_at"] = pd.to_datetime(frame["updated_at"]).dt.tz_localize(None).astype("datetime64[us]")
    merged = want.merge(got, on="order_id", how="outer", suffixes=("_want", "_got"), indicator=True)
    differs = (merged["_merge"] != "both") | (
        (merged["status_want"] != merged["status_got"])
        | (merged["amount_want"] != merged["amount_got"])
        | (merged["updated_at_want"] != merged["updated_at_got"])
    )
    return int(differs.sum())
