"""One seeded generator for a small e-commerce world, with configurable, counted dirt.

Why: every pattern needs believable data, and a pattern can only verify its cleaning if it knows
exactly how dirty the input was. `EcommerceWorld` builds customers, products, sessions of
clickstream events (view → cart → purchase), orders and payments from one seed: the same seed and
size give byte-identical data. `Dirt` controls the defects a real feed has (exact redeliveries,
null business keys, late events, malformed records, schema drift), and every defect injected is
counted in a `DirtReport`, so a pipeline can assert rows in = rows out + rows quarantined + rows
deduplicated against ground truth rather than against itself.

Vectorised with numpy, so the same code makes 10 thousand rows for a lesson or 10 million for a
benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from expert.runtime.errors import ArgumentError

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""The world's clock starts here: pinned, so runs never depend on today's date."""
DAYS = 30

EVENT_TYPES = ("view", "cart", "purchase")
SEGMENTS = ("consumer", "small_business", "enterprise")
CHANNELS = ("web", "ios", "android")
CATEGORIES = ("electronics", "home", "fashion", "sports", "books", "beauty", "toys", "grocery")
PAYMENT_METHODS = ("card", "paypal", "bank_transfer", "gift_card")
COUNTRIES = {
    "US": ("New York", "Austin", "Seattle", "Chicago"),
    "GB": ("London", "Leeds", "Bristol"),
    "DE": ("Berlin", "Munich", "Hamburg"),
    "FR": ("Paris", "Lyon", "Nantes"),
    "IN": ("Bengaluru", "Pune", "Delhi"),
    "BR": ("São Paulo", "Recife"),
}
FIRST_NAMES = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Katherine",
    "Guido",
    "Anita",
    "Bjarne",
    "Hedy",
    "John",
    "Sophie",
    "Donald",
    "Leslie",
    "Niklaus",
    "Shafi",
    "Yukihiro",
    "Fran",
    "Vint",
    "Lynn",
    "Brian",
]
LAST_NAMES = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners",
    "Johnson",
    "Rossum",
    "Borg",
    "Stroustrup",
    "Lamarr",
    "McCarthy",
    "Wilson",
    "Knuth",
    "Lamport",
    "Wirth",
    "Goldwasser",
    "Matsumoto",
    "Bilas",
    "Cerf",
    "Conway",
    "Kernighan",
]


@dataclass(frozen=True)
class Dirt:
    """How dirty the delivered data is. Rates are fractions of the delivered rows."""

    duplicate_rate: float = 0.02
    null_key_rate: float = 0.005
    late_rate: float = 0.02
    late_by: timedelta = timedelta(hours=3)
    malformed_rate: float = 0.005
    schema_drift: bool = True

    @classmethod
    def clean(cls) -> Dirt:
        return cls(0.0, 0.0, 0.0, timedelta(0), 0.0, schema_drift=False)


@dataclass(frozen=True)
class WorldSize:
    """Row counts derived from one knob: the number of clickstream events."""

    events: int
    customers: int
    products: int

    @classmethod
    def from_rows(cls, rows: int) -> WorldSize:
        if rows < 100:
            raise ArgumentError(
                f"rows must be at least 100 for the data generator, got {rows}", "pass --rows 100 or more"
            )
        return cls(events=rows, customers=max(50, rows // 40), products=max(40, min(5000, rows // 200)))


@dataclass
class DirtReport:
    """Ground truth about the defects injected into one delivered table."""

    table: str
    clean_rows: int
    duplicates: int = 0
    null_keys: int = 0
    late: int = 0
    malformed: int = 0
    late_ids: list[int] = field(default_factory=list)

    @property
    def delivered_rows(self) -> int:
        """Parseable rows delivered: every clean row (null-key ones included) plus redelivered copies.

        Malformed lines come on top of these: they are extra, truncated lines, never a lost row.
        """
        return self.clean_rows + self.duplicates


class EcommerceWorld:
    """A deterministic e-commerce world. Tables are built lazily and cached."""

    def __init__(self, rows: int = 10_000, *, seed: int = 42, dirt: Dirt | None = None) -> None:
        self.size = WorldSize.from_rows(rows)
        self.seed = seed
        self.dirt = dirt if dirt is not None else Dirt()

    def _rng(self, stream: str) -> np.random.Generator:
        """An independent generator per table, so adding a table never changes another."""
        return np.random.default_rng([self.seed, *stream.encode()])

    @cached_property
    def customers(self) -> pd.DataFrame:
        """Customers with PII (names, email, phone, birth date) and a hidden propensity driver."""
        rng, n = self._rng("customers"), self.size.customers
        ids = np.arange(1, n + 1, dtype=np.int64)
        first = rng.choice(FIRST_NAMES, n)
        last = rng.choice(LAST_NAMES, n)
        countries = rng.choice(list(COUNTRIES), n, p=[0.35, 0.15, 0.15, 0.1, 0.15, 0.1])
        cities = np.array(
            [COUNTRIES[c][i % len(COUNTRIES[c])] for c, i in zip(countries, rng.integers(0, 12, n), strict=True)]
        )
        signup = EPOCH - pd.to_timedelta(rng.integers(1, 3 * 365, n), unit="D")
        birth = pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(0, 365 * 55, n), unit="D")
        return pd.DataFrame(
            {
                "customer_id": ids,
                "first_name": first,
                "last_name": last,
                "email": [
                    f"{f.lower()}.{la.lower()}{i}@example.com" for f, la, i in zip(first, last, ids, strict=True)
                ],
                "phone": [f"+1-555-{p // 10000:03d}-{p % 10000:04d}" for p in rng.integers(0, 10_000_000, n)],
                "birth_date": birth.date,
                "country": countries,
                "city": cities,
                "segment": rng.choice(SEGMENTS, n, p=[0.7, 0.22, 0.08]),
                "signup_ts": signup,
                "updated_at": pd.Series(signup),
            }
        )

    @cached_property
    def products(self) -> pd.DataFrame:
        rng, n = self._rng("products"), self.size.products
        categories = rng.choice(CATEGORIES, n)
        price = np.round(np.exp(rng.normal(3.3, 0.9, n)), 2).clip(1.5, 2500)
        return pd.DataFrame(
            {
                "product_id": np.arange(1, n + 1, dtype=np.int64),
                "name": [f"{c.title()} item {i}" for i, c in enumerate(categories, start=1)],
                "category": categories,
                "price": price,
            }
        )

    @cached_property
    def _engagement(self) -> np.ndarray:
        """Hidden per-customer purchase propensity: what the ML pattern learns to predict."""
        rng = self._rng("engagement")
        seg_boost = pd.Series(self.customers["segment"]).map(
            {"consumer": 0.0, "small_business": 0.4, "enterprise": 0.8}
        )
        age = (EPOCH.year - pd.to_datetime(self.customers["birth_date"]).dt.year).to_numpy()
        return rng.normal(0, 1, len(age)) + seg_boost.to_numpy() - (age - 45) / 40

    @property
    def purchase_propensity(self) -> pd.Series:
        """The hidden propensity by customer_id: ground truth for evaluation and simulation, never a feature.

        Why public: an ML pattern can only check a model, or simulate how customers respond to it,
        against a truth the model never saw; this is the driver of every session, cart and purchase.
        """
        index = pd.Index(self.customers["customer_id"], name="customer_id")
        return pd.Series(self._engagement, index=index, name="propensity")

    @cached_property
    def events(self) -> pd.DataFrame:
        """Clickstream: sessions of view → (cart) → (purchase), in event-time order."""
        rng = self._rng("events")
        target = self.size.events
        sessions = target  # at least one event each, so never short; the surplus is cut below
        engagement = self._engagement
        weights = np.exp(engagement)
        customer_idx = rng.choice(len(weights), sessions, p=weights / weights.sum())
        prices = self.products["price"].to_numpy()
        product_idx = rng.integers(0, len(prices), sessions)
        logit_cart = -0.6 + 0.9 * engagement[customer_idx] - 0.25 * np.log(prices[product_idx])
        carted = rng.random(sessions) < 1 / (1 + np.exp(-logit_cart))
        logit_buy = 0.2 + 0.8 * engagement[customer_idx]
        bought = carted & (rng.random(sessions) < 1 / (1 + np.exp(-logit_buy)))
        steps = 1 + carted.astype(np.int64) + bought.astype(np.int64)
        session_idx = np.repeat(np.arange(sessions), steps)[:target]
        step = (np.arange(len(session_idx)) - np.repeat(np.cumsum(steps) - steps, steps)[:target]).astype(np.int64)
        start = rng.integers(0, DAYS * 86_400, sessions)
        offsets = start[session_idx] + step * rng.integers(5, 600, len(session_idx))
        customer_ids = self.customers["customer_id"].to_numpy()[customer_idx[session_idx]]
        frame = pd.DataFrame(
            {
                "session_id": session_idx.astype(np.int64) + 1,
                "customer_id": customer_ids,
                "product_id": self.products["product_id"].to_numpy()[product_idx[session_idx]],
                "event_type": np.array(EVENT_TYPES)[step],
                "channel": rng.choice(CHANNELS, len(session_idx), p=[0.5, 0.3, 0.2]),
                "price": prices[product_idx[session_idx]],
                "event_ts": pd.to_datetime(EPOCH) + pd.to_timedelta(offsets, unit="s"),
            }
        )
        frame = frame.sort_values(["event_ts", "session_id"], kind="stable").reset_index(drop=True)
        frame.insert(0, "event_id", np.arange(1, len(frame) + 1, dtype=np.int64))
        return frame

    @cached_property
    def orders(self) -> pd.DataFrame:
        """One order per purchase event, placed seconds after it."""
        rng = self._rng("orders")
        purchases = self.events[self.events["event_type"] == "purchase"].reset_index(drop=True)
        quantity = rng.choice([1, 1, 1, 2, 2, 3], len(purchases))
        status = rng.choice(["placed", "shipped", "delivered", "returned"], len(purchases), p=[0.15, 0.25, 0.55, 0.05])
        order_ts = purchases["event_ts"] + pd.to_timedelta(rng.integers(1, 30, len(purchases)), unit="s")
        return pd.DataFrame(
            {
                "order_id": np.arange(1, len(purchases) + 1, dtype=np.int64),
                "customer_id": purchases["customer_id"],
                "product_id": purchases["product_id"],
                "quantity": quantity,
                "unit_price": purchases["price"],
                "amount": np.round(purchases["price"] * quantity, 2),
                "status": status,
                "order_ts": order_ts,
                "updated_at": order_ts,
            }
        )

    @cached_property
    def payments(self) -> pd.DataFrame:
        rng = self._rng("payments")
        orders = self.orders
        failed = rng.random(len(orders)) < 0.03
        return pd.DataFrame(
            {
                "payment_id": np.arange(1, len(orders) + 1, dtype=np.int64),
                "order_id": orders["order_id"],
                "method": rng.choice(PAYMENT_METHODS, len(orders), p=[0.6, 0.25, 0.1, 0.05]),
                "amount": orders["amount"],
                "status": np.where(failed, "failed", "captured"),
                "paid_ts": orders["order_ts"] + pd.to_timedelta(rng.integers(1, 120, len(orders)), unit="s"),
            }
        )

    def customer_snapshots(self, count: int = 3, change_rate: float = 0.1) -> list[pd.DataFrame]:
        """Full daily snapshots of the customer table: each changes some cities/segments and adds customers.

        The input an SCD type 2 dimension is built from.
        """
        rng = self._rng("snapshots")
        base = self.customers.drop(columns=["signup_ts"]).copy()
        base["updated_at"] = pd.Timestamp(EPOCH)
        held_back = max(1, len(base) // 10)
        current = base.iloc[: len(base) - held_back].copy()
        snapshots = [current.copy()]
        for day in range(1, count):
            current = current.copy()
            changed = rng.random(len(current)) < change_rate
            moved = changed & (rng.random(len(current)) < 0.5)
            countries = current.loc[moved, "country"].to_numpy()
            current.loc[moved, "city"] = [COUNTRIES[c][(day + 1) % len(COUNTRIES[c])] for c in countries]
            regraded = changed & ~moved
            current.loc[regraded, "segment"] = rng.choice(SEGMENTS, int(regraded.sum()))
            current.loc[changed, "updated_at"] = pd.Timestamp(EPOCH + timedelta(days=day))
            newcomers = base.iloc[len(base) - held_back :].iloc[(day - 1) :: max(1, count - 1)].copy()
            newcomers["updated_at"] = pd.Timestamp(EPOCH + timedelta(days=day))
            current = pd.concat([current, newcomers]).drop_duplicates("customer_id", keep="last")
            snapshots.append(current.reset_index(drop=True))
        return snapshots

    def deliver(self, table: str, key: str, ts_column: str | None = None) -> tuple[pd.DataFrame, DirtReport]:
        """The table as a real feed delivers it: redelivered copies, null keys and late rows added.

        Late rows keep their event time but are moved to the end of the delivery (they arrive after
        newer data), which is what makes them late for a watermark.
        """
        clean: pd.DataFrame = getattr(self, table).copy()
        rng = self._rng(f"dirt:{table}")
        n = len(clean)
        report = DirtReport(table=table, clean_rows=n)
        dirt = self.dirt
        null_count = int(n * dirt.null_key_rate)
        if null_count:
            nulls = rng.choice(n, null_count, replace=False)
            clean[key] = clean[key].astype("Int64")
            clean.loc[nulls, key] = pd.NA
            report.null_keys = null_count
        late_mask = np.zeros(n, dtype=bool)
        if ts_column and dirt.late_rate and dirt.late_by > timedelta(0):
            keyed = np.flatnonzero(clean[key].notna().to_numpy())
            late_idx = rng.choice(keyed, min(int(n * dirt.late_rate), len(keyed)), replace=False)
            late_mask[late_idx] = True
            clean.loc[late_mask, ts_column] = clean.loc[late_mask, ts_column] - dirt.late_by
            report.late = int(late_mask.sum())
            report.late_ids = sorted(int(v) for v in clean.loc[late_mask, key].dropna())
        keyed = np.flatnonzero(clean[key].notna().to_numpy())
        dup_count = min(int(n * dirt.duplicate_rate), len(keyed))
        duplicates = clean.iloc[rng.choice(keyed, dup_count, replace=False)] if dup_count else clean.iloc[:0]
        report.duplicates = dup_count
        on_time = clean[~late_mask]
        delivered = pd.concat([on_time, duplicates, clean[late_mask]], ignore_index=True)
        return delivered, report

    def write_raw_landing(self, landing: Path, *, batches: int = 3) -> dict[str, DirtReport]:
        """Land raw files the way upstream systems drop them, one set per batch.

        - `clickstream/batch=NNN.json`: JSON lines; malformed lines injected; from the second batch
          on, events carry an extra `device` field (schema drift).
        - `orders/batch=NNN.csv`: CSV with a header.
        - `customers/snapshot=NNN.json`: a full customer snapshot per batch.

        Returns the dirt report per source, including how many lines are malformed.
        """
        events, event_report = self.deliver("events", "event_id", "event_ts")
        orders, order_report = self.deliver("orders", "order_id")
        rng = self._rng("landing")
        for part, chunk in enumerate(np.array_split(np.arange(len(events)), batches)):
            frame = events.iloc[chunk]
            lines = list(_json_lines(frame, drift=self.dirt.schema_drift and part > 0, rng=rng))
            lines, broken = corrupt_lines(lines, self.dirt.malformed_rate, rng)
            event_report.malformed += broken
            _write(landing / "clickstream" / f"batch={part:03d}.json", "\n".join(lines) + "\n")
        for part, chunk in enumerate(np.array_split(np.arange(len(orders)), batches)):
            path = landing / "orders" / f"batch={part:03d}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            orders.iloc[chunk].to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        snapshots = self.customer_snapshots(batches)
        for part, snapshot in enumerate(snapshots):
            text = snapshot.to_json(orient="records", lines=True, date_format="iso", date_unit="s")
            _write(landing / "customers" / f"snapshot={part:03d}.json", text)
        customers = DirtReport(table="customers", clean_rows=sum(len(s) for s in snapshots))
        return {"events": event_report, "orders": order_report, "customers": customers}


def _json_lines(frame: pd.DataFrame, *, drift: bool, rng: np.random.Generator) -> Iterator[str]:
    records = frame.to_dict(orient="records")
    devices = rng.choice(["mobile", "desktop", "tablet"], len(records)) if drift else None
    for i, record in enumerate(records):
        out = {k: _jsonable(v) for k, v in record.items()}
        if devices is not None:
            out["device"] = str(devices[i])
        yield json.dumps(out, separators=(",", ":"))


def corrupt_lines(lines: list[str], rate: float, rng: np.random.Generator) -> tuple[list[str], int]:
    """Insert truncated copies of some records, as a writer that crashed mid-line leaves them.

    The originals stay intact, so every real record is still delivered once; the malformed lines
    are extra and must end up in a rescued/quarantine column, not in the data.
    """
    count = int(len(lines) * rate)
    if not count:
        return lines, 0
    out = list(lines)
    for i in sorted(rng.choice(len(lines), count, replace=False), reverse=True):
        out.insert(int(i), lines[i][: max(1, len(lines[i]) // 2)])
    return out, count


def _jsonable(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
