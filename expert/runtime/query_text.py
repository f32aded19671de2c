"""What a SQL statement's text says, read with sqlglot's Snowflake dialect: the tables it reads and
writes, the columns it filters on, and its normalized form.

Why: QUERY_HISTORY and an audit trail hold statements as text. Cost and governance analyses need
to know which tables a query read (did a write invalidate its cached result? did it read PII?),
which table a DML statement changed, and which columns a WHERE clause filters on (what a
clustering key must serve). Regular expressions get these wrong on joins, aliases and quoting; a
parser does not. Table names come back fully upper-cased, as Snowflake stores unquoted names.
"""

from __future__ import annotations

import re
from collections import defaultdict

import sqlglot
from sqlglot import exp

_QUERY_START = re.compile(r"\s*(SELECT|WITH)\b", re.IGNORECASE)


def _name(table: exp.Table) -> str:
    return ".".join(part.name for part in table.parts).upper()


def tables_read(sql: str) -> set[str]:
    """The tables a query (SELECT or WITH) reads; empty for any other statement or text that does not parse."""
    if not _QUERY_START.match(sql):
        return set()
    try:
        tree = sqlglot.parse_one(sql, read="snowflake")
    except sqlglot.errors.ParseError:
        return set()
    if tree is None or not isinstance(tree, exp.Query):
        return set()
    return {_name(table) for table in tree.find_all(exp.Table)}


def written_table(sql: str) -> str | None:
    """The table an INSERT, MERGE or COPY changes (which invalidates cached results that read it)."""
    tree = sqlglot.parse_one(sql, read="snowflake")
    if not isinstance(tree, exp.Insert | exp.Merge | exp.Copy):
        return None
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    return _name(target) if isinstance(target, exp.Table) else None


def filter_columns(sql: str) -> dict[str, set[str]]:
    """The columns each table is filtered on in the WHERE clause, by table name."""
    tree = sqlglot.parse_one(sql, read="snowflake")
    where = tree.find(exp.Where)
    if where is None:
        return {}
    tables = {t.alias_or_name.upper(): _name(t) for t in tree.find_all(exp.Table)}
    only = next(iter(tables.values())) if len(tables) == 1 else None
    out: dict[str, set[str]] = defaultdict(set)
    for column in where.find_all(exp.Column):
        table = tables.get(column.table.upper()) if column.table else only
        if table:
            out[table].add(column.name.upper())
    return out


def normalized(sql: str) -> str:
    """The statement as the optimizer sees it: keyword and identifier case, whitespace and layout erased."""
    return sqlglot.parse_one(sql, read="snowflake").sql(dialect="snowflake", normalize=True, pretty=False)
