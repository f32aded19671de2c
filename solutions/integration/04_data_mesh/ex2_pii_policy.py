"""Exercise integration/04.2 · Federated governance: find the personal data a contract forgot to classify.

One of integration/04's global policies, evaluated by the platform on every product in the
catalog: "pii-classified". Personal data may leave its domain only masked, and the platform masks
exactly the columns a contract classifies as confidential or restricted. A column of email
addresses called `contact`, classified `internal`, would be served raw to every consumer. So the
policy does not trust names alone: it looks at the values.

Your task: complete `holds_personal_data`, so that `unclassified_pii` returns exactly the columns
of `sample` that hold personal data but are not protected by `contract`, where
- a column holds personal data when its NAME says so (PII_NAME finds it), or when it is a text
  column and at least half (PII_SHARE) of its non-null values fully match one of
  PII_VALUE_PATTERNS (an email address, a phone number, an IPv4 address); NULLs count neither
  way, and a column of other values (numbers, dates) is judged by its name alone,
- a column is protected when the contract classifies it `confidential` or `restricted`
  (`contract.column(name).protected`).
`sample` has exactly the contract's columns (text columns hold str or None).

Check it: expert check integration/04.2
"""

import re

import pandas as pd

from expert.runtime.contracts import DataContract

PII_VALUE_PATTERNS = {
    "email address": r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$",
    "phone number": r"^\+?[0-9][0-9 ().-]{6,}[0-9]$",
    "IPv4 address": r"^(\d{1,3}\.){3}\d{1,3}$",
}
PII_NAME = re.compile(r"(^|_)(first|last|full|middle|given|family)_?name$|birth|^dob$|email|phone|ssn|passport|address")
PII_SHARE = 0.5


def holds_personal_data(name: str, values: pd.Series) -> bool:
    """Does this column hold personal data, by its name or by its values?"""
    if PII_NAME.search(name):
        return True
    present = values.dropna()
    if present.empty or not all(isinstance(v, str) for v in present):
        return False
    return any(present.str.fullmatch(pattern).mean() >= PII_SHARE for pattern in PII_VALUE_PATTERNS.values())


def unclassified_pii(contract: DataContract, sample: pd.DataFrame) -> list[str]:
    """Columns holding personal data that the contract leaves unprotected (the policy's violations)."""
    return sorted(
        name
        for name in sample.columns
        if holds_personal_data(name, sample[name]) and not contract.column(name).protected
    )
