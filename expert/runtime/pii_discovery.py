"""PII discovery by column names and sampled values: the local twin of Snowflake's classifier.

Why: a masking policy protects only the columns someone knows hold PII. Names alone are wrong in
both directions: CONTACT and NOTES hold emails and phone numbers, EMAIL_OPT_IN and PHONE_VERIFIED
are booleans. `discover_pii` scans every column of a schema: its name against NAME_RULES, and for
text columns a sample of its values against VALUE_RULES, in SQL (REGEXP_LIKE over a LIMIT sample),
and decides per column: PII when the values say so, or when the name does and the type fits.
SYSTEM$CLASSIFY does this on an account (Enterprise edition); compare its categories with these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from expert.runtime.snowflake import SnowflakeSession

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
PHONE = r"\+?[0-9][0-9 ().-]{7,}[0-9]"
NAME_RULES = {
    "email": r"EMAIL",
    "phone": r"PHONE|MOBILE",
    "person name": r"(FIRST|LAST|FULL)_?NAME",
    "birth date": r"BIRTH|DOB",
}
VALUE_RULES = {"email": f"^{EMAIL}$", "phone": f"^{PHONE}$", "free text with PII": f".*({EMAIL}|{PHONE}).*"}
VALUE_MATCH_SHARE = 0.5
"""A column is an email or phone column when at least half its sampled values match."""
FREE_TEXT_MATCH_SHARE = 0.05
"""Free text holds PII when at least 5% of its sampled values contain an email or a phone number."""
SAMPLE_ROWS = 1000
TYPE_FOR = {"person name": "TEXT", "birth date": "DATE"}
"""Categories with no value pattern are trusted on the name only when the column type fits."""
STAND_IN = (
    "SYSTEM$CLASSIFY",
    "a scan of each column's name and of a sample of its values with regular expressions, in SQL "
    "(on an account too; the classifier is shown there, to compare)",
)
"""What the scan stands in for, and how (for `run.stand_in`)."""


def sql_regex(rule: str) -> str:
    """A Python regular expression as the body of a SQL string literal (backslashes doubled)."""
    return rule.replace("\\", "\\\\")


@dataclass(frozen=True)
class Finding:
    """One column: what its name and its sampled values suggest, and the share of values that matched."""

    table: str
    column: str
    data_type: str
    by_name: str | None
    by_values: str | None
    value_share: float

    @property
    def category(self) -> str | None:
        """PII when the values say so, or the name does and the type fits (names, birth dates)."""
        if self.by_values:
            return self.by_values
        if self.by_name and TYPE_FOR.get(self.by_name) == self.data_type:
            return self.by_name
        return None


def discover_pii(session: SnowflakeSession, database: str, schema: str) -> list[Finding]:
    """Scan every column of `database.schema`: its name against NAME_RULES, a sample of its values
    against VALUE_RULES in SQL."""
    columns = session.fetch(
        f"SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM {database}.INFORMATION_SCHEMA.COLUMNS "
        f"WHERE TABLE_SCHEMA = '{schema}' ORDER BY TABLE_NAME, ORDINAL_POSITION"
    )
    findings = []
    for column in columns:
        table, name = f"{database}.{schema}.{column['TABLE_NAME']}", column["COLUMN_NAME"]
        data_type = column["DATA_TYPE"]
        by_name = next((cat for cat, rule in NAME_RULES.items() if re.search(rule, name)), None)
        by_values, share = None, 0.0
        if data_type == "TEXT":
            checks = ", ".join(
                f"COUNT_IF(REGEXP_LIKE(V, '{sql_regex(rule)}')) / NULLIF(COUNT(V), 0) AS \"{cat}\""
                for cat, rule in VALUE_RULES.items()
            )
            shares = session.fetch(f"SELECT {checks} FROM (SELECT {name} AS V FROM {table} LIMIT {SAMPLE_ROWS})")[0]
            for cat, value in shares.items():
                threshold = FREE_TEXT_MATCH_SHARE if cat == "FREE TEXT WITH PII" else VALUE_MATCH_SHARE
                if value is not None and float(value) >= threshold and float(value) > share:
                    by_values, share = cat.lower(), float(value)
        findings.append(Finding(table, name, data_type, by_name, by_values, share))
    return findings
