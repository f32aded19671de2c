"""The planned clickstream: what will be sent to Kafka, and what a correct pipeline must end up with.

Why plan first: every exactly-once check compares the stores against counts fixed before a single
record is sent (distinct events, redeliveries, malformed lines, late events), never against what
the pipeline itself reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from expert.runtime.data import EPOCH, Dirt, EcommerceWorld, corrupt_lines

if TYPE_CHECKING:
    from expert.runtime.pattern import PatternRun

EVENTS_PER_MINUTE = 200
"""The shop's event clock: 200 events per minute of event time, so windows are comparable across rates."""
LATE_BY = timedelta(minutes=30)
"""Late events carry an event time this far behind their neighbours (a phone that was offline)."""
DUPLICATE_RATE = 0.02
MALFORMED_RATE = 0.01
LATE_RATE = 0.01
REDELIVERY_GAP = 3
"""A redelivered event goes out again this many events after the original."""


@dataclass(frozen=True)
class Delivery:
    """One Kafka record as the producer will send it."""

    key: bytes | None
    value: bytes
    event_id: int | None
    kind: str  # "event", "redelivery" or "malformed"
    event_ts_ms: int | None = None
    late: bool = False


@dataclass
class EventPlan:
    """What will be sent, and what a correct pipeline must therefore end up with."""

    deliveries: list[Delivery]
    events: pd.DataFrame
    late_ids: set[int]
    products: pd.DataFrame
    """The shop's product table (product_id, name, category, price): the real-time lane's enrichment."""

    def count(self, kind: str) -> int:
        return sum(d.kind == kind for d in self.deliveries)

    @property
    def expected_silver(self) -> pd.DataFrame:
        """Every distinct, well-formed, on-time event: exactly what silver and Snowflake must hold."""
        return self.events[~self.events["event_id"].isin(self.late_ids)]

    def gold_truth(self) -> pd.DataFrame:
        """Per minute of event time and product: views, carts, purchases and revenue, from the plan."""
        events = self.expected_silver
        frame = pd.DataFrame(
            {
                "window_start": events["event_ts"].dt.floor("min"),
                "product_id": events["product_id"].astype("int64"),
                "views": (events["event_type"] == "view").astype("int64"),
                "carts": (events["event_type"] == "cart").astype("int64"),
                "purchases": (events["event_type"] == "purchase").astype("int64"),
                "cents": np.where(events["event_type"] == "purchase", np.round(events["price"] * 100), 0).astype(
                    "int64"
                ),
            }
        )
        truth = frame.groupby(["window_start", "product_id"], as_index=False).sum()
        return normalise_gold(truth.assign(revenue=truth["cents"] / 100))


def normalise_gold(frame: pd.DataFrame) -> pd.DataFrame:
    """A gold table from any engine in the truth's shape (revenue in integer cents), sorted, for `equals`."""
    out = frame.rename(columns=str.lower)
    out = out.assign(
        window_start=pd.to_datetime(out["window_start"]).dt.tz_localize(None).astype("datetime64[ns]"),
        cents=np.round(out["revenue"].astype(float) * 100).astype("int64"),
    )
    columns = ["window_start", "product_id", "views", "carts", "purchases", "cents"]
    out = out[columns].astype({c: "int64" for c in columns[1:]})
    return out.sort_values(["window_start", "product_id"]).reset_index(drop=True)


def revenue_by_minute(**gold: pd.DataFrame) -> pd.DataFrame:
    """Revenue per minute of event time, one column per named gold table (normalised, in cents)."""
    return pd.concat(
        {name: g.groupby("window_start")["cents"].sum() / 100 for name, g in gold.items()}, axis=1
    ).reset_index()


def _event_json(record: dict[str, Any]) -> str:
    ts = pd.Timestamp(record["event_ts"]).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    body = {k: int(record[k]) for k in ("event_id", "session_id", "customer_id", "product_id")}
    body |= {"event_type": record["event_type"], "channel": record["channel"], "price": float(record["price"])}
    return json.dumps(body | {"event_ts": ts}, separators=(",", ":"))


def plan_events(rows: int, seed: int) -> EventPlan:
    """Clickstream events on the shop's clock, with redeliveries, malformed lines and late events mixed in."""
    world = EcommerceWorld(rows, seed=seed, dirt=Dirt.clean())
    events = world.events.copy()
    n = len(events)
    rng = np.random.default_rng([seed, *b"real-time"])
    offsets_ms = np.arange(n, dtype=np.int64) * 60_000 // EVENTS_PER_MINUTE
    events["event_ts"] = pd.Timestamp(EPOCH).tz_localize(None) + pd.to_timedelta(offsets_ms, unit="ms")
    late_pos = np.sort(rng.choice(np.arange(int(n * 0.6), n), max(1, int(n * LATE_RATE)), replace=False))
    events.loc[late_pos, "event_ts"] -= LATE_BY
    late_ids = {int(i) for i in events.loc[late_pos, "event_id"]}
    on_time = np.setdiff1d(np.arange(n - REDELIVERY_GAP), late_pos)
    redelivered = set(rng.choice(on_time, max(1, int(n * DUPLICATE_RATE)), replace=False).tolist())

    lines: list[str] = []
    pending: dict[int, list[str]] = {}
    for pos, record in enumerate(events.to_dict(orient="records")):
        line = _event_json(record)
        lines.append(line)
        if pos in redelivered:
            pending.setdefault(pos + REDELIVERY_GAP, []).append(line)
        lines.extend(pending.pop(pos, []))
    lines, _ = corrupt_lines(lines, MALFORMED_RATE, rng)

    deliveries: list[Delivery] = []
    seen: set[int] = set()
    for line in lines:
        try:
            body = json.loads(line)
        except json.JSONDecodeError:
            deliveries.append(Delivery(None, line.encode(), None, "malformed"))
            continue
        event_id = int(body["event_id"])
        ts_ms = int(pd.Timestamp(body["event_ts"]).timestamp() * 1000)
        kind = "redelivery" if event_id in seen else "event"
        seen.add(event_id)
        deliveries.append(
            Delivery(str(body["session_id"]).encode(), line.encode(), event_id, kind, ts_ms, event_id in late_ids)
        )
    return EventPlan(deliveries, events, late_ids, world.products)


def show_plan(run: PatternRun, plan: EventPlan) -> None:
    """Show what will be sent: the counts every later check compares against."""
    run.table(
        [
            {"records to send": len(plan.deliveries), "kind": "all", "why": "what bronze must hold"},
            {"records to send": plan.count("event"), "kind": "distinct events", "why": "views, carts, purchases"},
            {"records to send": plan.count("redelivery"), "kind": "redeliveries", "why": "same event id again: dedup"},
            {"records to send": plan.count("malformed"), "kind": "malformed", "why": "truncated JSON: quarantine"},
            {"records to send": len(plan.late_ids), "kind": "late", "why": f"event time {LATE_BY} behind: watermark"},
        ],
        title="the event plan (ground truth for every check below)",
    )
    events = plan.expected_silver
    span = (events["event_ts"].max() - events["event_ts"].min()).total_seconds() / 60
    run.say(
        f"Event time runs on the shop's clock ({EVENTS_PER_MINUTE} events per minute, {span:.0f} minutes); "
        f"latency is measured on the wall clock, from the Kafka record timestamp set at produce time."
    )
