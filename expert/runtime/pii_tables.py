"""Three customer tables with PII where a scan must find it, and not where the column names suggest it.

Why: PII discovery is only provable against a ground truth that names alone would get wrong.
From an `EcommerceWorld`, this builds CUSTOMERS (names, email, phone, birth date), SUPPORT_TICKETS
(a CONTACT column holding an email or a phone number, and free-text NOTES where customers
sometimes leave one) and MARKETING_PREFS (EMAIL_OPT_IN, PHONE_VERIFIED: PII-sounding booleans that
are not PII), seeded, with the PII columns of each as the generator wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from expert.runtime.data import EcommerceWorld
from expert.runtime.snowflake import SnowflakeSession

NOTE_TEMPLATES = (
    "Parcel arrived damaged.",
    "Please call me back at {phone} about my refund.",
    "Wrong size ordered.",
    "Reach me at {email}, the invoice address is wrong.",
    "Where is my order?",
)


@dataclass(frozen=True)
class PiiTables:
    frames: dict[str, pd.DataFrame]
    """Table name → rows, columns upper-cased."""
    ddl: dict[str, str]
    """Table name → its column definitions."""
    pii_columns: dict[str, set[str]]
    """Table name → the columns that hold PII (the ground truth)."""


def pii_tables(world: EcommerceWorld, seed: int) -> PiiTables:
    """CUSTOMERS, SUPPORT_TICKETS (two per customer on average) and MARKETING_PREFS, deterministic for the seed."""
    rng = np.random.default_rng([seed, 303])
    customers = world.customers.drop(columns=["updated_at"]).copy()
    customers["signup_ts"] = pd.to_datetime(customers["signup_ts"]).dt.tz_convert(None)
    customers["birth_date"] = pd.to_datetime(customers["birth_date"]).dt.date
    n = len(customers) * 2
    who = customers.iloc[rng.integers(0, len(customers), n)].reset_index(drop=True)
    by_phone = rng.random(n) < 0.5
    templates = np.array(NOTE_TEMPLATES)
    notes = [
        t.format(phone=p, email=e) for t, p, e in zip(rng.choice(templates, n), who["phone"], who["email"], strict=True)
    ]
    tickets = pd.DataFrame(
        {
            "TICKET_ID": np.arange(1, n + 1),
            "CUSTOMER_ID": who["customer_id"].to_numpy(),
            "COUNTRY": who["country"].to_numpy(),
            "CONTACT": np.where(by_phone, who["phone"], who["email"]),
            "NOTES": notes,
        }
    )
    prefs = pd.DataFrame(
        {
            "CUSTOMER_ID": customers["customer_id"].to_numpy(),
            "EMAIL_OPT_IN": rng.random(len(customers)) < 0.6,
            "PHONE_VERIFIED": rng.random(len(customers)) < 0.8,
            "PREFERRED_CHANNEL": rng.choice(["email", "sms", "none"], len(customers)),
        }
    )
    customers.columns = [c.upper() for c in customers.columns]
    ddl = {
        "CUSTOMERS": "CUSTOMER_ID NUMBER, FIRST_NAME VARCHAR, LAST_NAME VARCHAR, EMAIL VARCHAR, PHONE VARCHAR, "
        "BIRTH_DATE DATE, COUNTRY VARCHAR, CITY VARCHAR, SEGMENT VARCHAR, SIGNUP_TS TIMESTAMP_NTZ",
        "SUPPORT_TICKETS": "TICKET_ID NUMBER, CUSTOMER_ID NUMBER, COUNTRY VARCHAR, CONTACT VARCHAR, NOTES VARCHAR",
        "MARKETING_PREFS": "CUSTOMER_ID NUMBER, EMAIL_OPT_IN BOOLEAN, PHONE_VERIFIED BOOLEAN, PREFERRED_CHANNEL VARCHAR",
    }
    pii = {
        "CUSTOMERS": {"FIRST_NAME", "LAST_NAME", "EMAIL", "PHONE", "BIRTH_DATE"},
        "SUPPORT_TICKETS": {"CONTACT", "NOTES"},
        "MARKETING_PREFS": set(),
    }
    return PiiTables({"CUSTOMERS": customers, "SUPPORT_TICKETS": tickets, "MARKETING_PREFS": prefs}, ddl, pii)


def load_pii_tables(session: SnowflakeSession, schema: str, world: EcommerceWorld, seed: int) -> dict[str, set[str]]:
    """Create and fill the three tables in `schema` (`DB.SCHEMA`); return the PII columns by full table name."""
    tables = pii_tables(world, seed)
    session.execute(f"USE SCHEMA {schema}")
    for table, frame in tables.frames.items():
        session.execute(f"CREATE OR REPLACE TABLE {schema}.{table} ({tables.ddl[table]})")
        session.write_pandas(frame, table, auto_create_table=False, use_logical_type=True)
    return {f"{schema}.{table}": columns for table, columns in tables.pii_columns.items()}
