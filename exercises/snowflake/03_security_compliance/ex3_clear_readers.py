"""Exercise snowflake/03.3 · Who reads PII in clear? Effective privileges as a graph closure, in SQL.

An auditor asks which roles can read PII unmasked. In snowflake/03 a role reads PII in clear when
it can SELECT a PII table and holds the access role AR_PII_CLEAR that the masking policies test.
Both come through the role graph: a role holds its own grants, those of every role granted to it,
transitively, and PUBLIC's. On an account that graph is in
SNOWFLAKE.ACCOUNT_USAGE.GRANTS_TO_ROLES, history included. Write the query that answers the
auditor, so that a proposed change can be gated on it.

Your task: `clear_pii_readers_sql(grants, roles, pii_tables)` returns a query with one column,
ROLE_NAME, one row per role (of the relation `roles`, column NAME) that reads PII in clear, where
- `grants` has GRANTS_TO_ROLES' columns: PRIVILEGE, GRANTED_ON, NAME, TABLE_CATALOG, TABLE_SCHEMA,
  GRANTED_TO ('ROLE'), GRANTEE_NAME, DELETED_ON. Role B granted to role A is a row (PRIVILEGE
  'USAGE', GRANTED_ON 'ROLE', NAME B, GRANTEE_NAME A); SELECT on a table is a row (PRIVILEGE
  'SELECT', GRANTED_ON 'TABLE', NAME the table, TABLE_CATALOG and TABLE_SCHEMA where it lives);
  a revoked grant stays in the history with DELETED_ON set, and no longer counts;
- a role holds itself, every role granted to it (at any depth) and PUBLIC;
- it reads PII in clear when the roles it holds include AR_PII_CLEAR and, among them, one with
  SELECT on a table of `pii_tables` (TABLE_CATALOG, TABLE_SCHEMA, TABLE_NAME).

The check runs it on the lesson's grants and on changes you have not seen (the gate's proposal,
roles rolled up one level too high, grants to PUBLIC, revoked grants, a reshuffled graph), and
compares the roles it reports with the role graph's closure.

Check it: expert check snowflake/03.3
"""

CLEAR_MARKER = "AR_PII_CLEAR"


def clear_pii_readers_sql(grants: str, roles: str, pii_tables: str) -> str:
    """The roles that can read a PII table with the clear marker in their session."""
    # TODO: this looks one level down the role graph only: a role that gets AR_PII_CLEAR or its
    # SELECT through a role two levels down is missed. It also counts revoked grants (DELETED_ON)
    # and forgets that every role holds PUBLIC. Follow the grants to any depth (WITH RECURSIVE).
    return f"""
WITH holds AS (
  SELECT GRANTEE_NAME AS ROLE_NAME, NAME AS HELD FROM {grants} WHERE GRANTED_ON = 'ROLE'
),
reads_pii AS (
  SELECT g.GRANTEE_NAME AS HELD
  FROM {grants} AS g JOIN {pii_tables} AS p
    ON g.TABLE_CATALOG = p.TABLE_CATALOG AND g.TABLE_SCHEMA = p.TABLE_SCHEMA AND g.NAME = p.TABLE_NAME
  WHERE g.PRIVILEGE = 'SELECT' AND g.GRANTED_ON = 'TABLE'
)
SELECT DISTINCT h.ROLE_NAME
FROM holds AS h
WHERE h.HELD = '{CLEAR_MARKER}'
  AND h.ROLE_NAME IN (SELECT a.ROLE_NAME FROM holds AS a WHERE a.HELD IN (SELECT HELD FROM reads_pii))
"""
