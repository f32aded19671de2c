"""PII discovery: names and sampled values together find exactly the generator's PII columns."""

from __future__ import annotations

from expert.runtime.data import EcommerceWorld
from expert.runtime.pii_discovery import discover_pii, sql_regex
from expert.runtime.pii_tables import load_pii_tables, pii_tables


def test_discovery_matches_the_generated_ground_truth(snowflake_local) -> None:  # type: ignore[no-untyped-def]
    snowflake_local.execute("CREATE DATABASE IF NOT EXISTS GOV")
    snowflake_local.execute("CREATE SCHEMA IF NOT EXISTS GOV.DATA")
    truth = load_pii_tables(snowflake_local, "GOV.DATA", EcommerceWorld(1_000, seed=3), 3)
    findings = discover_pii(snowflake_local, "GOV", "DATA")
    found = {(f.table, f.column) for f in findings if f.category}
    assert found == {(t, c) for t, columns in truth.items() for c in columns}
    named = {(f.table, f.column) for f in findings if f.by_name}
    assert ("GOV.DATA.MARKETING_PREFS", "EMAIL_OPT_IN") in named - found, "a PII-sounding boolean is not PII"
    assert ("GOV.DATA.SUPPORT_TICKETS", "NOTES") in found - named, "free text with PII is found by its values"


def test_generated_tables_are_deterministic() -> None:
    first, again = pii_tables(EcommerceWorld(1_000, seed=3), 3), pii_tables(EcommerceWorld(1_000, seed=3), 3)
    for name, frame in first.frames.items():
        assert frame.equals(again.frames[name]), name
    assert sql_regex(r"a\.b") == r"a\\.b"
