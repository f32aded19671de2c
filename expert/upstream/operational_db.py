"""The shop's operational product catalogue: a SQLite file the shop writes to, and the lake reads.

Why SQLite: it is a real SQL database behind a real driver (`sqlite3`), with an index on
`updated_at`, so the incremental extract in integration/01 runs the same query-based CDC it
would run against Postgres or MySQL. SQLite has no datetime type: timestamps are stored as
ISO-8601 UTC text, which sorts correctly.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from expert.runtime.data import EPOCH, EcommerceWorld


def iso_utc(ts: Any) -> str:
    """A timestamp as ISO-8601 UTC text (`2026-01-01T00:00:00Z`)."""
    import pandas as pd

    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_operational_db(path: Path, world: EcommerceWorld, extra: Sequence[tuple[Any, ...]] = ()) -> int:
    """Create the `products` table from the generator's products plus `extra` rows; returns the rows it holds.

    `extra` rows are (product_id, name, category, price): rows an operational database legitimately
    holds (drafts, unlisted items) that an analytical model must keep out.
    """
    stamp = iso_utc(EPOCH)
    rows = [
        (int(r.product_id), r.name, r.category, float(r.price), stamp) for r in world.products.itertuples(index=False)
    ]
    rows += [(*row, stamp) for row in extra]
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE products (product_id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT, "
            "price REAL NOT NULL, updated_at TEXT NOT NULL)"
        )
        conn.execute("CREATE INDEX products_updated_at ON products (updated_at)")
        conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?)", rows)
    return len(rows)


def reprice_products(path: Path, count: int, at: str) -> list[int]:
    """The shop changes `count` prices by 10% (an ordinary operational write at `at`); returns the product ids."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        ids = [r[0] for r in conn.execute("SELECT product_id FROM products WHERE price > 0 ORDER BY product_id")]
        chosen = ids[:: max(1, len(ids) // count)][:count]
        conn.executemany(
            "UPDATE products SET price = round(price * 1.1, 2), updated_at = ? WHERE product_id = ?",
            [(at, pid) for pid in chosen],
        )
    return chosen
