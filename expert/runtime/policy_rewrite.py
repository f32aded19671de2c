"""Masking and row access policies evaluated per role by SQL rewrite: what each role would really see.

Why: on an account, a masking or row access policy is enforced for the session's role, so "who
can read an email address in clear" means querying the table as every role. The local engine has
one implicit role, and even on an account switching through every role is slow and needs every
grant. So each policy's real Snowflake SQL body is rewritten for one role at a time:
CURRENT_ROLE() becomes the role's name, IS_ROLE_IN_SESSION(r) becomes whether r is in the role's
closure, the policy's argument becomes the protected column. The engine then evaluates the
rewritten bodies over the real rows: the SQL is the policy's, only the session context is bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from expert.runtime.rbac import RbacModel
from expert.runtime.snowflake import SnowflakeSession
from expert.runtime.snowflake_ddl import MaskingPolicy, RowAccessPolicy

STAND_IN = (
    "masking and row access policies",
    "each policy's SQL body evaluated by the engine for one role at a time, with CURRENT_ROLE() and "
    "IS_ROLE_IN_SESSION() bound to that role",
)
"""What the rewrite stands in for, and how (for `run.stand_in`)."""


def bind_role(body: str, role: str, closure: set[str], args: Mapping[str, str]) -> str:
    """A policy body rewritten for one role: CURRENT_ROLE() becomes the role's name, IS_ROLE_IN_SESSION(r)
    becomes whether r is in `closure`, and each argument in `args` becomes the column it protects (of `t`)."""

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.CurrentRole) or (
            isinstance(node, exp.Anonymous) and node.name.upper() == "CURRENT_ROLE"
        ):
            return exp.Literal.string(role)
        if isinstance(node, exp.Anonymous) and node.name.upper() == "IS_ROLE_IN_SESSION":
            return exp.Boolean(this=node.expressions[0].name.upper() in closure)
        if isinstance(node, exp.Column) and not node.table and node.name.upper() in args:
            return exp.column(args[node.name.upper()], table="t")
        return node

    return sqlglot.parse_one(body, read="snowflake").transform(rewrite).sql(dialect="snowflake")


@dataclass(frozen=True)
class Protection:
    """A PII column, its mask, and which of its values are PII (free text is PII only where it holds some)."""

    table: str
    column: str
    policy: MaskingPolicy
    holds_pii: str = "TRUE"
    """A SQL condition on `t` that is true where the value is PII."""


@dataclass(frozen=True)
class PolicyEvaluator:
    """Evaluates the policies on a set of tables for any role of `model`."""

    session: SnowflakeSession
    model: RbacModel
    protections: Sequence[Protection]
    row_policy: RowAccessPolicy
    row_filtered: Mapping[str, Mapping[str, str]]
    """The tables the row access policy is attached to, each with its policy argument → column."""

    def masked(self, protection: Protection, role: str) -> str:
        """The column as `role` reads it: the masking policy's body bound to the role."""
        closure = self.model.closure(role)
        return bind_role(protection.policy.body, role, closure, {protection.policy.arg: protection.column})

    def row_filter(self, role: str, table: str) -> str:
        """The rows of `table` that `role` sees: the row access policy bound to the role, or all rows."""
        if table not in self.row_filtered:
            return "TRUE"
        return bind_role(self.row_policy.body, role, self.model.closure(role), self.row_filtered[table])

    def visible(self, role: str, table: str) -> dict[str, Any]:
        """What `role` sees in `table`: its rows, and per PII column how many PII values arrive unchanged."""
        short = table.rsplit(".", maxsplit=1)[-1]
        if not self.model.can_select(role, table):
            return {"role": role, "table": short, "select": False, "rows": 0, "clear": {}}
        mine = [p for p in self.protections if p.table == table]
        clear = ", ".join(
            f"COUNT_IF(({self.masked(p, role)}) = t.{p.column} AND {p.holds_pii}) AS {p.column}" for p in mine
        )
        row = self.session.fetch(
            f"SELECT COUNT(*) AS ROWS_VISIBLE{', ' + clear if clear else ''} FROM {table} AS t "
            f"WHERE {self.row_filter(role, table)}"
        )[0]
        return {
            "role": role,
            "table": short,
            "select": True,
            "rows": int(row["ROWS_VISIBLE"]),
            "clear": {p.column: int(row[p.column] or 0) for p in mine},
        }

    def first_row(self, role: str, table: str, *, also: Sequence[str], order_by: str) -> dict[str, Any]:
        """The first row of `table` (by `order_by`) that `role` sees: the `also` columns as stored, the
        protected ones through their masks (empty when the role sees no row)."""
        masked = [f"{self.masked(p, role)} AS {p.column}" for p in self.protections if p.table == table]
        columns = ", ".join([*(f"t.{c}" for c in also), *masked])
        rows = self.session.fetch(
            f"SELECT {columns} FROM {table} AS t WHERE {self.row_filter(role, table)} ORDER BY t.{order_by} LIMIT 1"
        )
        return rows[0] if rows else {}

    def clear_readers(self) -> tuple[set[str], list[dict[str, Any]]]:
        """Every role in the model that reads at least one PII value in clear, with the evidence."""
        tables = sorted({p.table for p in self.protections})
        results = [self.visible(role, table) for role in self.model.roles for table in tables]
        readers = {r["role"] for r in results if any(v > 0 for v in r["clear"].values())}
        return readers, results
