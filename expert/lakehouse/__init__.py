"""A reusable medallion pipeline on Delta Lake (bronze → silver → gold), shared by several patterns.

Stable API (databricks/01 builds it, databricks/02 monitors it, databricks/03 deploys and promotes
it, integration/01 extends it):

    layout = MedallionLayout.local(workdir / "lake")          # or MedallionLayout("s3a://…", landing_dir=…)
    truth = land_raw(EcommerceWorld(rows, seed=seed), layout, batches=3)   # ground truth per source
    result = run_medallion(spark, layout)                     # bronze, silver, gold; incremental
    release_next_batch(layout); run_medallion(spark, layout)  # only the new files are processed

Each layer also runs on its own: `run_bronze`, `run_silver`, `run_gold`. Table locations come
from `layout.table(name)` with the names exported here; SQL can use `layout.sql(name)`.
"""

from expert.lakehouse.layout import (
    BRONZE_TABLES,
    DIM_CUSTOMER,
    GOLD_DAILY_FUNNEL,
    GOLD_DAILY_SALES,
    PIPELINE_STATE,
    QUARANTINE,
    SILVER_BATCHES,
    SILVER_EVENTS,
    SILVER_ORDERS,
    MedallionLayout,
)
from expert.lakehouse.medallion import (
    DEFAULT_EXPECTATIONS,
    GOLD_SPECS,
    BronzeResult,
    GoldFlowRun,
    GoldResult,
    GoldSpec,
    MedallionResult,
    SilverFlow,
    SilverResult,
    SilverTableResult,
    StreamRun,
    aggregate,
    land_raw,
    release_next_batch,
    run_bronze,
    run_gold,
    run_medallion,
    run_silver,
    run_silver_flows,
    table_version,
)
from expert.lakehouse.quality import Action, Expectation, ExpectationFailedError, QualityCounts, apply_expectations

__all__ = [
    "BRONZE_TABLES",
    "DEFAULT_EXPECTATIONS",
    "DIM_CUSTOMER",
    "GOLD_DAILY_FUNNEL",
    "GOLD_DAILY_SALES",
    "GOLD_SPECS",
    "PIPELINE_STATE",
    "QUARANTINE",
    "SILVER_BATCHES",
    "SILVER_EVENTS",
    "SILVER_ORDERS",
    "Action",
    "BronzeResult",
    "Expectation",
    "ExpectationFailedError",
    "GoldFlowRun",
    "GoldResult",
    "GoldSpec",
    "MedallionLayout",
    "MedallionResult",
    "QualityCounts",
    "SilverFlow",
    "SilverResult",
    "SilverTableResult",
    "StreamRun",
    "aggregate",
    "apply_expectations",
    "land_raw",
    "release_next_batch",
    "run_bronze",
    "run_gold",
    "run_medallion",
    "run_silver",
    "run_silver_flows",
    "table_version",
]
