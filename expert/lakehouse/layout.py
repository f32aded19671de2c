"""Where every table, checkpoint and landing file of the medallion pipeline lives, under one root.

Why one object: a pipeline that builds paths by string concatenation in ten places cannot be
pointed at another environment. Every location here derives from `root`, a local path or a URI
(`s3a://bucket/lakehouse`, `abfss://...`, a Unity Catalog volume path), so moving the whole
pipeline to a staging schema or to object storage means passing another root. Only the landing
zone, which the local data generator writes with ordinary file I/O, must be a local directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from expert.lakehouse.delta_ops import delta_table
from expert.runtime.errors import ExpertError

BRONZE_TABLES = {"clickstream": "bronze_events", "orders": "bronze_orders", "customers": "bronze_customers"}
"""Raw source (landing folder name) → bronze table it is ingested into."""
SILVER_EVENTS = "silver_events"
SILVER_ORDERS = "silver_orders"
DIM_CUSTOMER = "dim_customer"
QUARANTINE = "silver_quarantine"
GOLD_DAILY_SALES = "gold_daily_sales"
GOLD_DAILY_FUNNEL = "gold_daily_funnel"
PIPELINE_STATE = "_pipeline_state"
SILVER_BATCHES = "_silver_batches"
"""One row per silver micro-batch: what it read, quarantined, deduplicated, inserted and updated."""


def _is_uri(location: str) -> bool:
    return "://" in location or location.startswith("dbfs:")


@dataclass(frozen=True)
class MedallionLayout:
    """Every location of one medallion pipeline instance.

    `root`: where tables and checkpoints go (a local path or a URI).
    `landing_dir`: the local landing zone; defaults to `<root>/landing` when `root` is local.
    `prefix`: prepended to every table directory name, so two instances (e.g. `staging_` and
    `prod_`) can share one root.
    """

    root: str
    landing_dir: str | None = None
    prefix: str = ""

    def __post_init__(self) -> None:
        if _is_uri(self.root) and self.landing_dir is None:
            raise ValueError("a URI root needs an explicit local landing_dir for the generator's files")
        if not _is_uri(self.root):
            self._refuse_what_is_not_a_table()

    def _refuse_what_is_not_a_table(self) -> None:
        """A local root must be a directory, and whatever already sits where one of this layout's
        tables goes must be a Delta table: Delta refuses to create a table on a non-empty location,
        and a write would leave the foreign files inside the table's directory."""
        root = Path(self.root)
        if root.exists() and not root.is_dir():
            raise ExpertError(f"the lakehouse root {root} is a file", "point the root (--root) at a directory")
        tables = root / "tables"
        if not tables.is_dir():
            return
        for entry in sorted(tables.iterdir()):
            holds_files = entry.is_file() or any(entry.iterdir())
            if entry.name.startswith(self.prefix) and not (entry / "_delta_log").is_dir() and holds_files:
                raise ExpertError(
                    f"{entry} holds files but is not a Delta table (no _delta_log), and a table of this "
                    "pipeline goes there",
                    "point the root (--root) at an empty or new directory, or at one this pipeline wrote",
                )

    @classmethod
    def local(cls, directory: Path, *, prefix: str = "") -> MedallionLayout:
        """A layout whose tables, checkpoints and landing zone all live under `directory`."""
        return cls(str(directory.resolve()), prefix=prefix)

    def location(self, *parts: str) -> str:
        """`root/part/part`, for a local path or a URI alike."""
        return "/".join([self.root.rstrip("/"), *parts])

    def table(self, name: str) -> str:
        """The Delta table directory of `name` (e.g. `silver_events`)."""
        return self.location("tables", f"{self.prefix}{name}")

    def checkpoint(self, flow: str) -> str:
        """The streaming checkpoint of one flow (one per source and per target)."""
        return self.location("_checkpoints", f"{self.prefix}{flow}")

    @property
    def landing(self) -> Path:
        """The landing zone upstream systems drop files into (what the bronze streams watch)."""
        return Path(self.landing_dir) if self.landing_dir else Path(self.root) / "landing"

    @property
    def outbox(self) -> Path:
        """Files generated but not yet delivered: `release_batches` moves them into `landing`."""
        return self.landing.parent / f"{self.landing.name}_outbox"

    def source_dir(self, source: str) -> str:
        """Landing folder of one source, as a path string Spark reads."""
        return str(self.landing / source)

    def sql(self, name: str) -> str:
        """The table as a SQL identifier: delta.`<location>`."""
        return delta_table(self.table(name))
