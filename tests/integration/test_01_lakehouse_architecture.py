"""integration/01: multi-source lakehouse, Pattern A publish, Pattern C reconciliation, dashboard, DR drill."""

from __future__ import annotations

import re
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from conftest import require_tool
from expert.interop.reconcile import compare_checksums, differing_keys, repair_day
from expert.interop.transfer import delta_frame, snowflake_table_ddl
from expert.runtime.data import EcommerceWorld
from expert.runtime.pattern import load_module, select_patterns
from expert.upstream.bronze import extract_rows
from expert.upstream.operational_db import build_operational_db, reprice_products

(META,) = select_patterns("integration/01")
lakehouse = load_module(META)


@pytest.fixture
def outcome(pattern_run):  # type: ignore[no-untyped-def]
    return pattern_run("integration/01")


def test_pattern_passes_every_invariant(outcome) -> None:  # type: ignore[no-untyped-def]
    assert outcome.exit_code == 0, outcome.report.error
    names = [c.name for c in outcome.report.checks]
    assert all(c.passed for c in outcome.report.checks)
    for expected in (
        "API: every record fetched exactly once across pages, despite a 503",
        "API: silver_payments, quarantine and redeliveries match the generator's ground truth",
        "Delta gold and Snowflake gold agree on every day (rows, units, cents, key sum)",
        "reconciliation detects exactly the drift: one day, one measure, $10.00, one order",
        "a rerun reads nothing new from any source and commits nothing",
        "restored gold equals the pre-loss gold, row for row (count + content hash per table)",
    ):
        assert expected in names
    ddl = "\n".join(outcome.report.cloud_only)
    assert "CREATE ICEBERG TABLE" in ddl and "CATALOG_SOURCE = OBJECT_STORE" in ddl
    assert "CREATE FAILOVER GROUP" in ddl and "ALTER FAILOVER GROUP LAKEHOUSE_DR PRIMARY" in ddl


def test_headline_figures_are_measured_against_the_generator(outcome) -> None:  # type: ignore[no-untyped-def]
    orders, _ = EcommerceWorld(5_000).deliver("orders", "order_id")
    clean = orders.dropna(subset=["order_id"]).drop_duplicates()
    assert outcome.report.value("days reconciled") == clean["order_ts"].dt.date.nunique()
    assert outcome.report.value("drifted days detected") == 1
    assert outcome.report.value("gold revenue") == pytest.approx(float(clean["amount"].sum()), abs=0.01)
    assert outcome.report.value("restore time (RTO)") > 0


def test_dashboard_renders_in_headless_chromium(outcome, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chromium = require_tool("chromium")
    page = outcome.workdir / "dashboard.html"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    charts = re.findall(r'<div id="chart-\d+"[^>]*class="[^"]*js-plotly-plot', dom)
    assert len(charts) == 4, "every chart div was turned into a plotly plot"
    assert dom.count('class="main-svg"') >= 4, "plotly drew its SVG layers"
    assert 'data-js-errors="0"' in dom, "no script error while rendering"
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [line for line in console if "error" in line.lower() or "Uncaught" in line], console


def test_incremental_extract_reads_only_changed_rows(tmp_path: Path) -> None:
    world = EcommerceWorld(1_000)
    db = tmp_path / "ops.sqlite"
    total = build_operational_db(db, world, lakehouse.UNPRICED_PRODUCTS)
    rows = extract_rows(db, lakehouse.CHANGED_PRODUCTS_SQL, None)
    assert len(rows) == total == len(world.products) + len(lakehouse.UNPRICED_PRODUCTS)
    high_water = max(r[4] for r in rows)
    assert extract_rows(db, lakehouse.CHANGED_PRODUCTS_SQL, high_water) == []
    changed = reprice_products(db, 3, "2026-03-01T00:00:00Z")
    assert sorted(r[0] for r in extract_rows(db, lakehouse.CHANGED_PRODUCTS_SQL, high_water)) == sorted(changed)
    assert len(changed) == 3


def test_checksums_agree_with_pandas_and_locate_a_drift(spark, snowflake_local, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    fact = pd.DataFrame(
        {
            "order_id": [1, 2, 3, 4, 5],
            "order_date": [date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 2), date(2026, 1, 3)],
            "quantity": [1, 2, 1, 3, 1],
            "amount": [Decimal("10.10"), Decimal("5.05"), Decimal("0.99"), Decimal("100.00"), Decimal("7.50")],
            "payment_status": ["captured", "captured", "failed", "captured", "missing"],
        }
    )
    location = str(workdir / "fact")
    schema = "order_id BIGINT, order_date DATE, quantity INT, amount DECIMAL(18, 2), payment_status STRING"
    spark.createDataFrame(fact, schema).write.format("delta").save(location)
    snowflake_local.execute(snowflake_table_ddl("FACT_SALES", spark.read.format("delta").load(location).schema))
    snowflake_local.write_pandas(delta_frame(spark, location), "FACT_SALES", auto_create_table=False)

    by_day = fact.assign(cents=(fact["amount"] * 100).astype(int)).groupby("order_date")
    expected = {
        str(d): {
            "row_count": len(g),
            "units": int(g["quantity"].sum()),
            "amount_cents": int(g["cents"].sum()),
            "key_sum": int(g["order_id"].sum()),
        }
        for d, g in by_day
    }
    fact_days = lakehouse.FACT_DAYS
    assert fact_days.lake(spark, location) == expected
    assert fact_days.warehouse(snowflake_local) == expected

    snowflake_local.execute("UPDATE FACT_SALES SET QUANTITY = 4 WHERE ORDER_ID = 3")
    drift = compare_checksums(expected, fact_days.warehouse(snowflake_local))
    assert [(m.day, m.measure, m.lake, m.warehouse) for m in drift] == [("2026-01-02", "units", 4, 7)]
    assert differing_keys(spark, snowflake_local, location, fact_days, "2026-01-02") == [3]
    assert repair_day(spark, snowflake_local, location, fact_days, "2026-01-02") == 2
    assert fact_days.warehouse(snowflake_local) == expected
