"""Checks for snowflake/03 (security and compliance): what each role really reads, on a role model and
data the starter does not show, evaluated by the engine as the lesson evaluates its policies."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import numpy as np
import pandas as pd
import sqlglot.errors

from expert.exercises.checks.snowflake_01 import learner_frame, learner_rows, learner_where
from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import CheckFailedError, expect
from expert.runtime.data import EcommerceWorld
from expert.runtime.pattern import load_module, select_patterns
from expert.runtime.pii_discovery import EMAIL, PHONE
from expert.runtime.pii_tables import load_pii_tables
from expert.runtime.policy_rewrite import bind_role
from expert.runtime.rbac import Grant, RbacModel, show_grants_rows
from expert.runtime.snowflake import SnowflakeSession
from expert.runtime.snowflake_ddl import GrantTarget, Privilege

DATABASE = "SHOP_PII"
CORE = f"{DATABASE}.CORE"
GOVERNANCE = f"{DATABASE}.GOVERNANCE"
CLEAR_MARKER = "AR_PII_CLEAR"
WORLD_ROWS = 8_000
"""200 customers and 400 support tickets."""


@cache
def lesson() -> ModuleType:
    """snowflake/03 itself: its declared role model is the base the checks add hidden roles to."""
    (meta,) = select_patterns("snowflake/03")
    return load_module(meta)


@dataclass(frozen=True)
class PolicyProbe:
    """Evaluates policy bodies the learner's `function` returned, for any role of `model`, as the lesson
    does: each body bound to the role (policy_rewrite.bind_role), then evaluated by the engine over the rows."""

    session: SnowflakeSession
    learner: LearnerCode
    function: str
    model: RbacModel

    def bind(self, body: str, role: str, args: Mapping[str, str]) -> str:
        try:
            return bind_role(body, role, self.model.closure(role), args)
        except sqlglot.errors.SqlglotError as exc:
            raise CheckFailedError(
                f"a policy body from {self.function} does not parse",
                str(exc).splitlines()[0],
                learner_where(self.learner, self.function),
            ) from exc

    def evaluate(
        self, table: str, key: str, expressions: Mapping[tuple[str, str], str], also: tuple[str, ...]
    ) -> tuple[pd.DataFrame, dict[tuple[str, str], str]]:
        """One query over `table` evaluating every (role, name) → SQL expression of `t`, identical ones once.

        Returns the rows (the key, the `also` columns, one column per distinct expression) and the
        column that holds each pair."""
        distinct: dict[str, str] = {}
        column = {pair: distinct.setdefault(sql, f"E{len(distinct)}") for pair, sql in expressions.items()}
        select = ", ".join(
            [f"t.{key}", *(f"t.{c}" for c in also), *(f"{sql} AS {alias}" for sql, alias in distinct.items())]
        )
        sql = f"SELECT {select} FROM {table} AS t ORDER BY t.{key}"
        return learner_frame(self.session, self.learner, self.function, sql), column


# --- snowflake/03.1 · masking policy bodies, per role --------------------------------------------

MASKED_COLUMNS = {
    f"{CORE}.CUSTOMERS": ("CUSTOMER_ID", {"FIRST_NAME": "person name", "LAST_NAME": "person name", "EMAIL": "email",
                                          "PHONE": "phone", "BIRTH_DATE": "birth date"}),
    f"{CORE}.SUPPORT_TICKETS": ("TICKET_ID", {"CONTACT": "free text with pii", "NOTES": "free text with pii"}),
}  # fmt: skip
"""The PII columns discovery finds, with the category whose policy masks each (as in the lesson)."""
EXPECTED_MASK: dict[str, Callable[[object], object]] = {
    "email": lambda v: re.sub(r"^[^@]+", "*****", str(v)),
    "phone": lambda v: "***-***-" + str(v)[-4:],
    "person name": lambda v: hashlib.sha256(str(v).encode()).hexdigest(),
    "birth date": lambda v: None,
    "free text with pii": lambda v: re.sub(PHONE, "[phone]", re.sub(EMAIL, "[email]", str(v))),
}
"""Each category's masked form, computed in Python from the stored value."""
HOLDS_PII = re.compile(f"{EMAIL}|{PHONE}")


def masking_model() -> RbacModel:
    """The lesson's role model, plus roles it does not show: one that bundles the clear access role, one
    that inherits compliance, one named like compliance without its access, one more reader."""
    model = lesson().declared_model()
    model.children["FR_PRIVACY_OFFICER"] = {"AR_CORE_READ", CLEAR_MARKER, "AR_WH_BI"}
    model.children["FR_AUDIT_LEAD"] = {"FR_COMPLIANCE"}
    model.children["FR_COMPLIANCE_INTERN"] = {"AR_CORE_READ", "AR_WH_BI"}
    model.children["FR_FRAUD_ANALYST"] = {"AR_CORE_READ", "AR_WH_TRANSFORM"}
    model.children["SYSADMIN"] |= {"FR_COMPLIANCE_INTERN", "FR_FRAUD_ANALYST"}
    return model


def _same(got: pd.Series, want: pd.Series) -> pd.Series:
    return (got.isna() & want.isna()) | (got.astype(str) == want.astype(str))


def check_masking_policies(learner: LearnerCode, ctx: CheckContext) -> str:
    """Every masking body evaluated for every role that can read the table, value by value against Python."""
    bodies_of = learner.function("masking_policy_bodies", ())
    bodies = bodies_of()
    wanted = sorted(EXPECTED_MASK)
    expect(isinstance(bodies, dict) and sorted(bodies) == wanted, "one masking policy body per category",
           f"got {sorted(bodies) if isinstance(bodies, dict) else type(bodies).__name__}, expected {wanted}")  # fmt: skip
    model = masking_model()
    world = EcommerceWorld(WORLD_ROWS, seed=ctx.seed())
    clear_leaks: list[str] = []
    blocked: dict[str, list[str]] = {}
    readers: set[str] = set()
    wrong_form: list[str] = []
    checked = 0
    with ctx.snowflake(database=DATABASE, schema="CORE") as session:
        session.execute(f"CREATE SCHEMA IF NOT EXISTS {GOVERNANCE}")
        load_pii_tables(session, CORE, world, ctx.seed(1))
        probe = PolicyProbe(session, learner, "masking_policy_bodies", model)
        for table, (key, columns) in MASKED_COLUMNS.items():
            can_read = [r for r in model.roles if model.can_select(r, table)]
            readers.update(can_read)
            expressions = {
                (role, column): probe.bind(bodies[category], role, {"VAL": column})
                for role in can_read
                for column, category in columns.items()
            }
            frame, alias = probe.evaluate(table, key, expressions, tuple(columns))
            for (role, column), name in alias.items():
                stored, got = frame[column], frame[name]
                category = columns[column]
                checked += len(frame)
                if CLEAR_MARKER in model.closure(role):
                    clear_for = int(_same(got, stored).sum())
                    if clear_for < len(frame):
                        blocked.setdefault(role, []).append(f"{column} {clear_for}/{len(frame)}")
                    continue
                pii = stored.astype(str).map(lambda v: bool(HOLDS_PII.search(v))) if category == "free text with pii" \
                    else pd.Series(True, index=stored.index)  # fmt: skip
                leaked = int((_same(got, stored) & pii).sum())
                if leaked:
                    clear_leaks.append(f"{role} reads {leaked} {column} values in clear")
                want = stored.map(EXPECTED_MASK[category])
                mismatch = ~_same(got, want)
                if mismatch.any():
                    first = int(mismatch.to_numpy().argmax())
                    wrong_form.append(f"{role}.{column}: {int(mismatch.sum())} of {len(frame)} differ, e.g. "
                                      f"{got.iloc[first]!r} where {want.iloc[first]!r} is due")  # fmt: skip
    clear = sorted(r for r in readers if CLEAR_MARKER in model.closure(r))
    expect(not blocked, f"roles holding {CLEAR_MARKER}, directly or through the roles they inherit, read PII in clear",
           "; ".join(f"{role} reads in clear only {', '.join(cols)} values" for role, cols in blocked.items())
           + f" (the readers that hold it: {clear})")  # fmt: skip
    expect(not clear_leaks, "no other role reads a PII value in clear", "; ".join(clear_leaks[:3]))
    expect(not wrong_form, "a masked value has its category's form (what analysis still relies on)",
           "; ".join(wrong_form[:2]))  # fmt: skip
    return (
        f"{len(readers)} roles that can read the customer tables x {sum(len(c) for _, c in MASKED_COLUMNS.values())} "
        f"PII columns, {checked:,} values read as each role would read them: in clear exactly for {clear}, masked "
        "to the expected form for the others"
    )


# --- snowflake/03.2 · the row access policy, per role -------------------------------------------

ROW_FILTERED = {f"{CORE}.CUSTOMERS": "CUSTOMER_ID", f"{CORE}.SUPPORT_TICKETS": "TICKET_ID"}
"""The tables the policy is attached to (on COUNTRY), with their keys."""
FULL_READ = "AR_CORE_READ"
SUPPORT_TEAMS = ("FR_SUPPORT_EU", "FR_SUPPORT_US", "FR_SUPPORT_UK", "FR_SUPPORT_APAC")


def region_model() -> RbacModel:
    """The lesson's role model plus two more regional teams, a support trainee with no entitlement, and
    another full reader."""
    model = lesson().declared_model()
    for role in ("FR_SUPPORT_UK", "FR_SUPPORT_APAC", "FR_SUPPORT_TRAINEE"):
        model.children[role] = {"AR_SUPPORT_READ", "AR_WH_BI"}
    model.children["FR_FRAUD_ANALYST"] = {FULL_READ, "AR_WH_TRANSFORM"}
    model.children["SYSADMIN"] |= {"FR_SUPPORT_UK", "FR_SUPPORT_APAC", "FR_SUPPORT_TRAINEE", "FR_FRAUD_ANALYST"}
    return model


def hidden_entitlements(rng: np.random.Generator) -> dict[str, set[str]]:
    """Countries per support team, reshuffled per seed (GB moves between the EU and UK teams, BR between
    the US and APAC teams); every team keeps at least one country."""
    eu = {"DE", "FR"} if rng.random() < 0.5 else {"DE", "FR", "GB"}
    us = {"US", "BR"} if rng.random() < 0.5 else {"US"}
    return {
        "FR_SUPPORT_EU": eu,
        "FR_SUPPORT_US": us,
        "FR_SUPPORT_UK": {"GB"} if "GB" not in eu else {"GB", "FR"},
        "FR_SUPPORT_APAC": {"IN"} | ({"BR"} - us),
    }


def check_row_access(learner: LearnerCode, ctx: CheckContext) -> str:
    """The body evaluated for every role that can read the two tables, rows seen against rows due."""
    row_access_body = learner.function("row_access_body", ())
    body = row_access_body()
    expect(isinstance(body, str) and bool(body.strip()), "the policy body is a SQL condition", repr(body))
    model = region_model()
    entitled = hidden_entitlements(np.random.default_rng(ctx.seed(1)))
    world = EcommerceWorld(WORLD_ROWS, seed=ctx.seed())
    seen: dict[tuple[str, str], set[int]] = {}
    with ctx.snowflake(database=DATABASE, schema="CORE") as session:
        session.execute(f"CREATE SCHEMA IF NOT EXISTS {GOVERNANCE}")
        load_pii_tables(session, CORE, world, ctx.seed(2))
        session.execute(f"CREATE TABLE {GOVERNANCE}.REGION_ENTITLEMENTS (ROLE_NAME VARCHAR, ALLOWED_COUNTRY VARCHAR)")
        rows = [(role, country) for role, countries in entitled.items() for country in sorted(countries)]
        session.execute(f"INSERT INTO {GOVERNANCE}.REGION_ENTITLEMENTS VALUES {', '.join(['(%s, %s)'] * len(rows))}",
                        [v for row in rows for v in row])  # fmt: skip
        probe = PolicyProbe(session, learner, "row_access_body", model)
        frames = {}
        for table, key in ROW_FILTERED.items():
            readers = [r for r in model.roles if model.can_select(r, table)]
            expressions = {(r, "VISIBLE"): probe.bind(body, r, {"CUSTOMER_COUNTRY": "COUNTRY"}) for r in readers}
            frame, alias = probe.evaluate(table, key, expressions, ("COUNTRY",))
            frames[table] = frame
            for (role, _), column in alias.items():
                seen[(role, table)] = set(frame.loc[frame[column].fillna(False).astype(bool), key].astype(int))
    problems: dict[str, list[str]] = {"all": [], "entitled": [], "none": []}
    for (role, table), visible in sorted(seen.items()):
        frame, key, short = frames[table], ROW_FILTERED[table], table.rsplit(".", 1)[-1]
        if FULL_READ in model.closure(role):
            kind, due = "all", set(frame[key].astype(int))
        elif role in entitled:
            kind, due = "entitled", set(frame.loc[frame["COUNTRY"].isin(entitled[role]), key].astype(int))
        else:
            kind, due = "none", set()
        if visible != due:
            countries = sorted(set(frame.loc[frame[key].isin(visible), "COUNTRY"]))
            problems[kind].append(f"{role} sees {len(visible)} {short} rows ({', '.join(countries) or 'none'}), "
                                  f"{len(due)} due ({', '.join(sorted(entitled.get(role, ()))) or kind})")  # fmt: skip
    expect(not problems["all"], f"a role holding {FULL_READ} (directly or inherited) sees every row",
           "; ".join(problems["all"][:3]))  # fmt: skip
    expect(not problems["entitled"], "each support team sees exactly the countries REGION_ENTITLEMENTS lists for it",
           "; ".join(problems["entitled"][:3]) + f" (entitlements: { {r: sorted(c) for r, c in entitled.items()} })")  # fmt: skip
    expect(not problems["none"], "a role with neither full read access nor an entitlement sees no row",
           "; ".join(problems["none"][:3]))  # fmt: skip
    roles = sorted({r for r, _ in seen})
    return (
        f"{len(roles)} roles x {len(ROW_FILTERED)} tables: full readers see all rows, "
        f"{len(entitled)} support teams exactly their countries ({ {r: sorted(c) for r, c in entitled.items()} }), "
        "everyone else none"
    )


# --- snowflake/03.3 · who reads PII in clear: the closure of the grants, in SQL -------------------

PII_TABLES = (f"{CORE}.CUSTOMERS", f"{CORE}.SUPPORT_TICKETS")
ALL_TABLES = (f"{CORE}.CUSTOMERS", f"{CORE}.MARKETING_PREFS", f"{CORE}.SUPPORT_TICKETS")
GRANT_COLUMNS = ("PRIVILEGE", "GRANTED_ON", "NAME", "TABLE_CATALOG", "TABLE_SCHEMA", "GRANTED_TO", "GRANTEE_NAME")


def grant_scenarios(rng: np.random.Generator) -> list[tuple[str, RbacModel, list[dict[str, str]]]]:
    """Role graphs to audit: (what changed, the model, grants revoked since). The lesson's model; the gate's
    proposal; compliance rolled up to SYSADMIN; SELECT granted to PUBLIC; a reshuffle drawn from `rng`."""
    base = lesson().declared_model()
    revoked = [
        {"PRIVILEGE": "USAGE", "GRANTED_ON": "ROLE", "NAME": CLEAR_MARKER, "GRANTEE_NAME": "FR_ANALYST"},
        {"PRIVILEGE": "SELECT", "GRANTED_ON": "TABLE", "NAME": f"{CORE}.CUSTOMERS", "GRANTEE_NAME": "PUBLIC"},
    ]
    proposal = base.copy()
    proposal.children["FR_ANALYST"].add(CLEAR_MARKER)
    proposal.grants["PUBLIC"] = {Grant(Privilege.SELECT, GrantTarget.TABLE, f"{CORE}.SUPPORT_TICKETS")}
    rolled_up = base.copy()
    rolled_up.children["SYSADMIN"].add("FR_COMPLIANCE")
    rolled_up.children["AR_MARKETING_READ"] = set()
    rolled_up.grants["AR_MARKETING_READ"] = {Grant(Privilege.SELECT, GrantTarget.TABLE, f"{CORE}.MARKETING_PREFS")}
    rolled_up.children["FR_MARKETING"] = {"AR_MARKETING_READ", CLEAR_MARKER}
    public = base.copy()
    public.grants["PUBLIC"] = {Grant(Privilege.SELECT, GrantTarget.TABLE, f"{CORE}.CUSTOMERS")}
    public.children["FR_PII_REVIEWER"] = {CLEAR_MARKER}
    reshuffled = base.copy()
    reshuffled.children["FR_AUDIT"] = {"FR_COMPLIANCE"}
    reshuffled.children["FR_AUDIT_LEAD"] = {"FR_AUDIT"}
    candidates = [r for r in reshuffled.roles if r != "PUBLIC"]
    added = 0
    while added < 4:
        parent, child = rng.choice(candidates, 2, replace=False).tolist()
        if parent not in reshuffled.closure(child) and child not in reshuffled.children[parent]:
            reshuffled.children[parent].add(child)
            added += 1
    return [
        ("the lesson's role model, with two grants revoked since (DELETED_ON set)", base, revoked),
        ("the gate's proposal: clear access for analysts, and a grant to PUBLIC", proposal, []),
        ("FR_COMPLIANCE rolled up to SYSADMIN, and a marketing role that reads no PII table", rolled_up, []),
        ("SELECT on CUSTOMERS granted to PUBLIC, and a reviewer role holding only the clear marker", public, []),
        ("a reshuffled graph: an audit chain three levels deep and four more role grants", reshuffled, []),
    ]


def grants_to_roles(model: RbacModel, revoked: list[dict[str, str]]) -> list[dict[str, object]]:
    """The model's grants as GRANTS_TO_ROLES rows (tables split into catalog, schema, name), plus revoked ones."""
    rows: list[dict[str, object]] = []
    for deleted, grant in [(None, g) for g in show_grants_rows(model, ALL_TABLES)] + [(1, g) for g in revoked]:
        catalog = schema = None
        name = grant["NAME"]
        if grant["GRANTED_ON"] == "TABLE":
            catalog, schema, name = name.split(".")
        rows.append({"PRIVILEGE": grant["PRIVILEGE"], "GRANTED_ON": grant["GRANTED_ON"], "NAME": name,
                     "TABLE_CATALOG": catalog, "TABLE_SCHEMA": schema, "GRANTED_TO": "ROLE",
                     "GRANTEE_NAME": grant["GRANTEE_NAME"], "DELETED_ON": deleted})  # fmt: skip
    return rows


def true_clear_readers(model: RbacModel) -> set[str]:
    """The lesson's closure: roles holding the clear marker that can SELECT a PII table."""
    return {
        r for r in model.roles if CLEAR_MARKER in model.closure(r) and any(model.can_select(r, t) for t in PII_TABLES)
    }


def check_clear_readers(learner: LearnerCode, ctx: CheckContext) -> str:
    """The learner's closure query on five role graphs, against the role model's own closure."""
    readers_sql = learner.function("clear_pii_readers_sql", ("grants", "roles", "pii_tables"))
    scenarios = grant_scenarios(np.random.default_rng(ctx.seed()))
    grants = pd.DataFrame(
        [
            {"SCENARIO": n, **row}
            for n, (_, model, revoked) in enumerate(scenarios)
            for row in grants_to_roles(model, revoked)
        ]
    )
    grants["DELETED_ON"] = pd.to_datetime(grants["DELETED_ON"].map(lambda d: None if pd.isna(d) else "2026-01-02"))
    roles = pd.DataFrame([{"SCENARIO": n, "NAME": r} for n, (_, model, _) in enumerate(scenarios) for r in model.roles])
    reported = []
    with ctx.snowflake(database=DATABASE, schema="GOVERNANCE") as session:
        session.execute(f"CREATE TABLE {GOVERNANCE}.ALL_GRANTS (SCENARIO NUMBER, {', '.join(f'{c} VARCHAR' for c in GRANT_COLUMNS)}, "
                        "DELETED_ON TIMESTAMP_NTZ)")  # fmt: skip
        session.write_pandas(grants, "ALL_GRANTS", auto_create_table=False, use_logical_type=True)
        session.execute(f"CREATE TABLE {GOVERNANCE}.ALL_ROLES (SCENARIO NUMBER, NAME VARCHAR)")
        session.write_pandas(roles, "ALL_ROLES", auto_create_table=False)
        session.execute(
            f"CREATE TABLE {GOVERNANCE}.PII_TABLES (TABLE_CATALOG VARCHAR, TABLE_SCHEMA VARCHAR, TABLE_NAME VARCHAR)"
        )
        session.execute(f"INSERT INTO {GOVERNANCE}.PII_TABLES VALUES " + ", ".join(
            "('{}', '{}', '{}')".format(*t.split(".")) for t in PII_TABLES))  # fmt: skip
        for n, _ in enumerate(scenarios):
            session.execute(f"CREATE VIEW {GOVERNANCE}.GRANTS_{n} AS SELECT {', '.join(GRANT_COLUMNS)}, DELETED_ON "
                            f"FROM {GOVERNANCE}.ALL_GRANTS WHERE SCENARIO = {n}")  # fmt: skip
            session.execute(
                f"CREATE VIEW {GOVERNANCE}.ROLES_{n} AS SELECT NAME FROM {GOVERNANCE}.ALL_ROLES WHERE SCENARIO = {n}"
            )
            sql = readers_sql(f"{GOVERNANCE}.GRANTS_{n}", f"{GOVERNANCE}.ROLES_{n}", f"{GOVERNANCE}.PII_TABLES")
            rows = learner_rows(session, learner, "clear_pii_readers_sql", sql)
            expect(all("ROLE_NAME" in row for row in rows), "the query returns a ROLE_NAME column",
                   f"columns {sorted(rows[0]) if rows else []}")  # fmt: skip
            reported.append({str(row["ROLE_NAME"]) for row in rows})
    for (what, model, _), got in zip(scenarios, reported, strict=True):
        want = true_clear_readers(model)
        expect(got == want, "the roles reported are exactly those whose closure reads PII in clear",
               f"{what}: reported {sorted(got)}; missed {sorted(want - got)}; reported but cannot {sorted(got - want)}")  # fmt: skip
    allowed = lesson().ALLOWED_PII_CLEAR
    return "; ".join(
        f"{what.split(':')[0].split(',')[0]}: {sorted(got)}{' (gate passes)' if got <= allowed else ' (gate rejects)'}"
        for (what, _, _), got in zip(scenarios, reported, strict=True)
    )
