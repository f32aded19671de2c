"""Exercise snowflake/03.1 · Masking policies: each role sees what it should, through the role hierarchy.

snowflake/03 masks every PII column with a policy whose body decides, per query, what the
session's role sees. Compliance reads PII in clear; everyone else reads a masked value that still
serves analysis (count customers by email domain, join on a pseudonymous name). Who may read in
clear is not one role's name: it is whoever holds the access role AR_PII_CLEAR, granted directly
or through any role they inherit. Write the policy bodies.

Your task: `masking_policy_bodies()` returns one masking policy body per category of BODY_FOR, a
SQL expression over the policy's argument VAL (VARCHAR; a DATE for "birth date") that returns
- VAL unchanged when AR_PII_CLEAR is in the session's roles (IS_ROLE_IN_SESSION);
- otherwise the masked form:
  - "email": the part before the @ replaced by five asterisks ('*****@example.com');
  - "phone": '***-***-' followed by the last four characters;
  - "person name": SHA2(VAL, 256), a pseudonym (the same name gives the same value: joins and
    counts still work);
  - "birth date": NULL;
  - "free text with pii": the text with every email address (EMAIL) replaced by '[email]' and
    then every phone number (PHONE) by '[phone]'; the rest of the text unchanged.

The check evaluates each body for every role of a role model you have not seen (the lesson's,
plus roles that inherit the clear access, or only look as if they did) over the customer tables,
and compares what each role reads with what it should read, value by value.

Check it: expert check snowflake/03.1
"""

from expert.runtime.pii_discovery import EMAIL, PHONE, sql_regex

BODY_FOR = ("email", "phone", "person name", "birth date", "free text with pii")
PATTERNS = {"email": sql_regex(EMAIL), "phone": sql_regex(PHONE)}
"""EMAIL and PHONE as the body of a SQL string literal, for REGEXP_REPLACE."""


def masking_policy_bodies() -> dict[str, str]:
    """Category → masking policy body over VAL."""
    clear = "IS_ROLE_IN_SESSION('AR_PII_CLEAR')"
    redacted = (
        f"REGEXP_REPLACE(REGEXP_REPLACE(VAL, '{PATTERNS['email']}', '[email]'), '{PATTERNS['phone']}', '[phone]')"
    )
    return {
        "email": f"CASE WHEN {clear} THEN VAL ELSE REGEXP_REPLACE(VAL, '^[^@]+', '*****') END",
        "phone": f"CASE WHEN {clear} THEN VAL ELSE CONCAT('***-***-', RIGHT(VAL, 4)) END",
        "person name": f"CASE WHEN {clear} THEN VAL ELSE SHA2(VAL, 256) END",
        "birth date": f"CASE WHEN {clear} THEN VAL ELSE NULL END",
        "free text with pii": f"CASE WHEN {clear} THEN VAL ELSE {redacted} END",
    }
