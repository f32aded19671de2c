"""Exercise snowflake/03.2 · A row access policy driven by a mapping table, not by names in its body.

snowflake/03 lets support agents see only the customers of their region. The regions live in a
mapping table, GOVERNANCE.REGION_ENTITLEMENTS (ROLE_NAME, ALLOWED_COUNTRY): giving a team another
country, or adding a team, is a row in that table, never a new version of the policy. Roles with
the full read access role see every row. Write the policy body.

Your task: `row_access_body()` returns the body of a row access policy whose argument is
CUSTOMER_COUNTRY (VARCHAR; the policy is attached to the COUNTRY column of CUSTOMERS and
SUPPORT_TICKETS): a SQL condition that is true for the rows the session's role may see, where
- a role that holds the access role AR_CORE_READ (directly or through the roles it inherits:
  IS_ROLE_IN_SESSION) sees every row;
- any other role sees the rows whose CUSTOMER_COUNTRY REGION_ENTITLEMENTS lists for it (ROLE_NAME
  = CURRENT_ROLE());
- a role with neither sees no row.
The table is ENTITLEMENTS below. The check evaluates the body for every role of a role model you
have not seen, with entitlements you have not seen, and compares the rows each role sees with the
rows it should see.

Check it: expert check snowflake/03.2
"""

ENTITLEMENTS = "SHOP_PII.GOVERNANCE.REGION_ENTITLEMENTS"


def row_access_body() -> str:
    """True for the rows the current role may see."""
    return (
        "IS_ROLE_IN_SESSION('AR_CORE_READ') OR EXISTS ("
        f"SELECT 1 FROM {ENTITLEMENTS} AS e "
        "WHERE e.ROLE_NAME = CURRENT_ROLE() AND e.ALLOWED_COUNTRY = CUSTOMER_COUNTRY)"
    )
