"""Lake ↔ warehouse helpers: checksum comparison and row canonicalisation, without engines."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from expert.interop.reconcile import _canonical, compare_checksums


def test_compare_checksums_reports_missing_days_and_measures() -> None:
    day = {"row_count": 2, "units": 3, "amount_cents": 500, "key_sum": 3}
    lake = {"2026-01-01": day, "2026-01-02": day}
    warehouse = {"2026-01-01": {**day, "amount_cents": 600}}
    mismatches = compare_checksums(lake, warehouse)
    assert [(m.day, m.measure) for m in mismatches] == [
        ("2026-01-01", "amount_cents"),
        ("2026-01-02", "row_count"),
        ("2026-01-02", "units"),
        ("2026-01-02", "amount_cents"),
        ("2026-01-02", "key_sum"),
    ]
    assert compare_checksums({}, {}) == []


def test_values_from_either_engine_compare_equal_when_they_are_equal() -> None:
    assert _canonical(np.int64(7)) == _canonical(7) == _canonical(Decimal("7")) == _canonical(7.0) == "7.00"
    assert _canonical(Decimal("10.10")) == _canonical(np.float64(10.1)) == _canonical(10.1) == "10.10"
    assert _canonical(Decimal("10.10")) != _canonical(Decimal("10.11"))
    assert _canonical("captured") == "captured"
