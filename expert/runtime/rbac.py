"""A Snowflake role graph as data: effective privileges by graph closure, the DDL it implies, and drift.

Why: in Snowflake a role holds its own grants plus those of every role granted to it, transitively
(and PUBLIC's). Who can read a table is therefore a question about the graph, not about one
role's grants. `RbacModel` is the declared graph: roles, which role is granted to which, and
direct privileges. It computes a role's closure and effective privileges, answers "can this role
SELECT that table", renders every CREATE ROLE / GRANT it implies, and lists the grants the way
SHOW GRANTS TO ROLE reports them, so the declared model can be diffed against an account.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from expert.runtime.snowflake_ddl import CloudStatement, GrantTarget, Privilege, PrivilegeGrant, Role, RoleGrant

SCHEMA_WIDE = (GrantTarget.ALL_TABLES_IN_SCHEMA, GrantTarget.FUTURE_TABLES_IN_SCHEMA)


@dataclass(frozen=True)
class Grant:
    """One privilege on one object (the unit SHOW GRANTS lists)."""

    privilege: Privilege
    on: GrantTarget
    name: str | None = None


@dataclass
class RbacModel:
    """Roles, who is granted to whom, and direct privileges: the declared source of truth."""

    children: dict[str, set[str]] = field(default_factory=dict)
    grants: dict[str, set[Grant]] = field(default_factory=dict)
    system: frozenset[str] = frozenset()
    """Roles Snowflake provides (ACCOUNTADMIN, SYSADMIN, ...): granted to, never created."""

    @classmethod
    def build(
        cls,
        system_hierarchy: Mapping[str, Iterable[str]],
        access_roles: Mapping[str, Iterable[Grant]],
        functional_roles: Mapping[str, Iterable[str]],
        functional_parents: Mapping[str, str | None],
    ) -> RbacModel:
        """System roles (parent → children), access roles (their grants), functional roles (the access
        roles they bundle) and the role each functional role rolls up to (None: to no one)."""
        model = cls(system=frozenset(system_hierarchy))
        for parent, kids in system_hierarchy.items():
            model.children.setdefault(parent, set()).update(kids)
        model.children.setdefault("PUBLIC", set())
        for role, grants in access_roles.items():
            model.children.setdefault(role, set())
            model.grants[role] = set(grants)
        for role, access in functional_roles.items():
            model.children.setdefault(role, set()).update(access)
            if parent := functional_parents[role]:
                model.children[parent].add(role)
        return model

    def copy(self) -> RbacModel:
        return RbacModel(
            {k: set(v) for k, v in self.children.items()}, {k: set(v) for k, v in self.grants.items()}, self.system
        )

    @property
    def roles(self) -> list[str]:
        return sorted(self.children)

    @property
    def custom_roles(self) -> list[str]:
        """The roles the model creates: all but the system roles and PUBLIC."""
        return [r for r in self.roles if r not in self.system and r != "PUBLIC"]

    def closure(self, role: str) -> set[str]:
        """Every role whose privileges `role` holds: itself, everything granted to it, transitively, and PUBLIC."""
        seen, queue = {role, "PUBLIC"}, deque([role])
        while queue:
            for child in self.children.get(queue.popleft(), ()):
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return seen

    def effective(self, role: str) -> set[Grant]:
        return {g for r in self.closure(role) for g in self.grants.get(r, ())}

    def can_select(self, role: str, table: str) -> bool:
        schema = table.rsplit(".", 1)[0]
        for grant in self.effective(role):
            if grant.privilege is Privilege.SELECT and (
                (grant.on is GrantTarget.TABLE and grant.name == table)
                or (grant.on in SCHEMA_WIDE and grant.name == schema)
            ):
                return True
        return False

    def statements(self) -> list[CloudStatement]:
        """Every DDL statement the model implies, roles first, in a deterministic order."""
        custom = self.custom_roles
        out: list[CloudStatement] = [Role(name=r) for r in custom]
        for parent in self.roles:
            out += [RoleGrant(role=child, to_role=parent) for child in sorted(self.children[parent]) if child in custom]
        for role in sorted(self.grants):
            by_target: dict[tuple[GrantTarget, str | None], list[Privilege]] = {}
            for grant in sorted(self.grants[role], key=lambda g: (g.on.value, g.name or "", g.privilege.value)):
                by_target.setdefault((grant.on, grant.name), []).append(grant.privilege)
            for (on, name), privileges in by_target.items():
                out.append(PrivilegeGrant(privileges=tuple(privileges), on=on, object_name=name, to_role=role))
        return out


def show_grants_rows(model: RbacModel, tables: Iterable[str]) -> list[dict[str, str]]:
    """The grants the model implies, as SHOW GRANTS TO ROLE lists them (schema-wide grants expanded to `tables`)."""
    tables = list(tables)
    rows = []
    for role in model.roles:
        for child in sorted(model.children[role]):
            if child != "PUBLIC":
                rows.append({"PRIVILEGE": "USAGE", "GRANTED_ON": "ROLE", "NAME": child, "GRANTEE_NAME": role})
        for grant in model.grants.get(role, ()):
            if grant.on is GrantTarget.FUTURE_TABLES_IN_SCHEMA:
                continue
            if grant.on is GrantTarget.ALL_TABLES_IN_SCHEMA:
                names = [t for t in tables if t.rsplit(".", 1)[0] == grant.name]
                rows += [
                    {"PRIVILEGE": grant.privilege.value, "GRANTED_ON": "TABLE", "NAME": t, "GRANTEE_NAME": role}
                    for t in names
                ]
            else:
                rows.append({"PRIVILEGE": grant.privilege.value, "GRANTED_ON": grant.on.value, "NAME": grant.name or "",
                             "GRANTEE_NAME": role})  # fmt: skip
    return rows


def grant_drift(expected: list[dict[str, Any]], observed: list[dict[str, Any]]) -> tuple[set[tuple], set[tuple]]:
    """(missing, extra): grants the model declares that the account lacks, and the reverse."""

    def key(row: dict[str, Any]) -> tuple:
        return (row["PRIVILEGE"].upper(), row["GRANTED_ON"].upper(), row["NAME"].upper(), row["GRANTEE_NAME"].upper())

    want, have = {key(r) for r in expected}, {key(r) for r in observed}
    return want - have, have - want
