"""Checks for databricks/03 (CI/CD): the release's invariants on releases and histories the starter does not show.

The migration plan's ground truth is schemachange's own rule (schemachange/deploy.py, out-of-order
off), computed with schemachange's own version key, so "1.10.0 comes after 1.9.0" is the tool's
answer, not the check's opinion.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from schemachange.version import get_alphanum_key

from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.lakehouse.delta_log import latest_version, table_commits
from expert.runtime.data import EcommerceWorld

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# ---------------------------------------------------------------------------------- migrations

DESCRIPTIONS = (
    "create_gold_daily_sales",
    "create_gold_daily_funnel",
    "add_release_lineage",
    "add_returned_orders",
    "cluster_daily_sales",
    "create_monthly_revenue",
    "widen_revenue_precision",
    "add_customer_segment",
    "create_refunds",
    "drop_legacy_totals",
    "add_channel_column",
    "rename_units",
)
REPEATABLE = ("R__gold_views.sql", "R__grants.sql", "R__masking_policies.sql")


def checksum(content: str) -> str:
    """What schemachange records in CHECKSUM: the SHA-224 of the script's (rendered) content."""
    return hashlib.sha224(content.encode("utf-8")).hexdigest()


def script_version(name: str) -> str:
    """`V1.10.0__x.sql` → `1.10.0`."""
    return name[1:].split("__", 1)[0]


def due_scripts(scripts: Mapping[str, str], history: Sequence[Mapping[str, str]]) -> list[str]:
    """schemachange's plan: versioned scripts not applied and newer than the newest applied version, in
    version order; then repeatable scripts whose content changed since their last successful run."""
    done = [row for row in history if row["STATUS"] == "Success"]
    applied = {row["SCRIPT"] for row in done if row["SCRIPT_TYPE"] == "V"}
    newest = max((get_alphanum_key(row["VERSION"]) for row in done if row["SCRIPT_TYPE"] == "V"), default=None)
    last_checksum = {row["SCRIPT"]: row["CHECKSUM"] for row in done if row["SCRIPT_TYPE"] == "R"}
    versioned = sorted((n for n in scripts if n[0] in "Vv"), key=lambda n: get_alphanum_key(n.lower()))
    repeatable = sorted((n for n in scripts if n[0] in "Rr"), key=lambda n: get_alphanum_key(n.lower()))
    plan = [
        name
        for name in versioned
        if name not in applied and (newest is None or get_alphanum_key(script_version(name)) > newest)
    ]
    return plan + [name for name in repeatable if last_checksum.get(name) != checksum(scripts[name])]


def history_row(name: str, content: str, status: str = "Success") -> dict[str, str]:
    versioned = name[0] in "Vv"
    return {
        "VERSION": script_version(name) if versioned else "",
        "SCRIPT": name,
        "SCRIPT_TYPE": "V" if versioned else "R",
        "CHECKSUM": checksum(content),
        "STATUS": status,
    }


@dataclass(frozen=True)
class Repository:
    """A migrations folder and a change-history table, with the story of how they got there."""

    scripts: dict[str, str]
    history: list[dict[str, str]]
    notes: dict[str, str]
    """script → what happened to it (for the messages)."""


def _versions(rng: np.random.Generator, count: int) -> list[str]:
    """Distinct three-part versions whose text order differs from their version order (x.9 and x.10)."""
    major = int(rng.integers(1, 3))
    minors = sorted({*rng.choice(range(0, 14), size=count - 2, replace=False).tolist(), 9, 10})
    versions = [f"{major}.{minor}.0" for minor in minors]
    patched = str(rng.choice(versions[:-1]))
    versions.append(patched.rsplit(".", 1)[0] + f".{int(rng.integers(10, 13))}")
    return sorted(versions, key=get_alphanum_key)


def migration_repository(seed: int) -> Repository:
    """Applied versions, a failed one, a hotfix merged below the newest, and repeatables in every state."""
    rng = np.random.default_rng(seed)
    versions = _versions(rng, int(rng.integers(7, 10)))
    names = [f"V{v}__{d}.sql" for v, d in zip(versions, rng.permutation(DESCRIPTIONS), strict=False)]
    scripts = {n: f"-- {n}\nALTER TABLE GOLD.DAILY_SALES ADD COLUMN C{i} NUMBER;\n" for i, n in enumerate(names)}
    applied = int(rng.integers(len(names) // 2 + 1, len(names) - 2))
    hotfix = names[int(rng.integers(1, applied - 1))]
    history = [history_row(n, scripts[n]) for n in names[:applied] if n != hotfix]
    notes = {hotfix: f"never applied, and older than the newest applied version {script_version(names[applied - 1])}"}
    failed = names[applied]
    history.append(history_row(failed, scripts[failed], "Failed"))
    notes[failed] = "its last run failed"
    views = {n: f"CREATE OR REPLACE VIEW {n[3:-4].upper()} AS SELECT {i};\n" for i, n in enumerate(REPEATABLE)}
    unchanged, changed, reverted = (str(n) for n in rng.permutation(REPEATABLE))
    history.append(history_row(unchanged, views[unchanged]))
    notes[unchanged] = "applied, content unchanged since"
    history.append(history_row(changed, "-- an older version\n" + views[changed]))
    history.append(history_row(changed, views[changed], "Failed"))
    notes[changed] = "changed since its last successful run (the run after it failed)"
    history.append(history_row(reverted, views[reverted]))
    history.append(history_row(reverted, "-- a change since reverted\n" + views[reverted]))
    notes[reverted] = "reverted to an earlier content: differs from its last successful run"
    new_view = "R__daily_margin.sql"
    scripts |= views | {new_view: "CREATE OR REPLACE VIEW DAILY_MARGIN AS SELECT 1;\n"}
    notes[new_view] = "never applied"
    return Repository(scripts, history, notes)


def _plan(learner_plan: Any, scripts: Mapping[str, str]) -> list[str]:
    expect(
        isinstance(learner_plan, list | tuple) and all(isinstance(n, str) for n in learner_plan),
        "the plan is a list of script names",
        f"migration_plan returned {type(learner_plan).__name__}",
    )
    unknown = [n for n in learner_plan if n not in scripts]
    expect(not unknown, "the plan names scripts of the folder", f"not in the folder: {unknown[:3]}")
    repeated = sorted({n for n in learner_plan if list(learner_plan).count(n) > 1})
    expect(not repeated, "each script at most once per deploy", f"more than once: {repeated}")
    return list(learner_plan)


def _judge_plan(got: list[str], repo: Repository, situation: str) -> None:
    want = due_scripts(repo.scripts, repo.history)
    extra = [n for n in got if n not in want]
    missing = [n for n in want if n not in got]
    for name in (*extra, *missing):
        what = repo.notes.get(name, "never applied" if not repo.history else "newer than every applied version")
        if name[0] in "Vv" and name in extra:
            invariant = "a versioned script runs once, and never below the newest applied version (out_of_order is off)"
        elif name[0] in "Vv":
            invariant = "every versioned script newer than the newest successfully applied version is due"
        else:
            invariant = "a repeatable script runs when it is new or its content changed since its last successful run"
        expect(
            False,
            invariant,
            f"{situation}: {name} ({what}) is {'in' if name in extra else 'missing from'} the plan; "
            f"due: {', '.join(want) or 'nothing'}",
        )
    inverted = next(((a, b) for a, b in itertools.pairwise(got) if want.index(a) > want.index(b)), None)
    expect(
        inverted is None,
        "versioned scripts run in version order (1.10.0 after 1.9.0), then repeatable ones by name",
        f"{situation}: {inverted[0]} is planned before {inverted[1]}; schemachange runs {', '.join(want)}"
        if inverted
        else "",
    )


def check_migration_plan(learner: LearnerCode, ctx: CheckContext) -> str:
    """A fresh database, a history with every case, then a rerun after the plan was applied."""
    migration_plan = learner.function("migration_plan", ("scripts", "history"))
    repo = migration_repository(ctx.seed())
    fresh = Repository(dict(repo.scripts), [], {})
    _judge_plan(_plan(migration_plan(dict(fresh.scripts), []), fresh.scripts), fresh, "a fresh database")
    history = [dict(row) for row in repo.history]
    plan = _plan(migration_plan(dict(repo.scripts), [dict(row) for row in history]), repo.scripts)
    _judge_plan(plan, repo, "a database with a change history")
    after = history + [history_row(name, repo.scripts[name]) for name in plan]
    again = _plan(migration_plan(dict(repo.scripts), [dict(row) for row in after]), repo.scripts)
    expect(not again, "deploying again right after a deploy applies nothing", f"the rerun plans {', '.join(again)}")
    versioned = sum(n[0] == "V" for n in plan)
    return (
        f"fresh database: all {len(fresh.scripts)} scripts in schemachange's order; with history: "
        f"{versioned} versioned + {len(plan) - versioned} repeatable due, the hotfix below the newest version "
        "and the unchanged view left out; the rerun plans nothing"
    )


# ---------------------------------------------------------------------------------- write-audit-publish

GOLD_SALES_SCHEMA = "order_date DATE, orders BIGINT, revenue DECIMAL(18,2), customers BIGINT"
GoldRow = tuple[Any, ...]


def daily_sales_rows(seed: int, days: int) -> list[GoldRow]:
    """A correct gold_daily_sales build: the generator's orders of `days` days, aggregated by pandas."""
    orders = EcommerceWorld(1_500, seed=seed).orders
    orders = orders.assign(order_date=orders["order_ts"].dt.date)
    chosen = sorted(orders["order_date"].unique())[:days]
    rows = []
    for day in chosen:
        of_day = orders[orders["order_date"] == day]
        revenue = Decimal(str(round(float(of_day["amount"].sum()), 2))).quantize(Decimal("0.01"))
        rows.append((day, len(of_day), revenue, int(of_day["customer_id"].nunique())))
    return rows


@dataclass(frozen=True)
class Defect:
    """One way a build breaks gold_daily_sales' contract, and how to make a build with it."""

    name: str
    story: str
    schema: str
    damage: Callable[[list[GoldRow], np.random.Generator], list[GoldRow]]


def _at(rows: list[GoldRow], rng: np.random.Generator, change: Callable[[GoldRow], GoldRow]) -> list[GoldRow]:
    index = int(rng.integers(0, len(rows)))
    return [change(r) if i == index else r for i, r in enumerate(rows)]


DEFECTS = (
    Defect(
        "a day twice",
        "a union of two partial builds repeats a day",
        GOLD_SALES_SCHEMA,
        lambda rows, rng: [*rows, rows[int(rng.integers(0, len(rows)))]],
    ),
    Defect(
        "a NULL order_date",
        "orders without a timestamp are grouped under NULL",
        GOLD_SALES_SCHEMA,
        lambda rows, rng: [*rows, (None, 3, Decimal("57.10"), 2)],
    ),
    Defect(
        "a negative revenue",
        "refunds subtracted twice",
        GOLD_SALES_SCHEMA,
        lambda rows, rng: _at(rows, rng, lambda r: (r[0], r[1], -r[2], r[3])),
    ),
    Defect(
        "more customers than orders",
        "count(DISTINCT) on the wrong column",
        GOLD_SALES_SCHEMA,
        lambda rows, rng: _at(rows, rng, lambda r: (r[0], r[1], r[2], r[1] + 2)),
    ),
    Defect(
        "a NULL revenue",
        "a day whose amounts all failed to parse",
        GOLD_SALES_SCHEMA,
        lambda rows, rng: _at(rows, rng, lambda r: (r[0], r[1], None, r[3])),
    ),
    Defect(
        "revenue as DOUBLE",
        "a cast lost in a refactoring",
        GOLD_SALES_SCHEMA.replace("DECIMAL(18,2)", "DOUBLE"),
        lambda rows, rng: [(r[0], r[1], float(r[2]), r[3]) for r in rows],
    ),
    Defect(
        "no rows",
        "the upstream job failed silently",
        GOLD_SALES_SCHEMA,
        lambda rows, rng: [],
    ),
)


def _first_release(ctx: CheckContext) -> str:
    """The live table before the check's releases: five days of gold, one commit (built once per worker)."""

    def build(directory: Path) -> None:
        rows = daily_sales_rows(ctx.seed(1), 5)
        ctx.spark.createDataFrame(rows, GOLD_SALES_SCHEMA).write.format("delta").save(str(directory))

    return str(ctx.prepared("gold_daily_sales", build))


def _live_rows(spark: SparkSession, live: str) -> Counter[GoldRow]:
    return Counter(tuple(r) for r in spark.read.format("delta").load(live).collect())


def check_audit_gate(learner: LearnerCode, ctx: CheckContext) -> str:
    """A good release, hidden bad ones (each breaks one contract rule), another good one: only the good go live."""
    promote = learner.function("promote", ("spark", "release", "live"))
    spark = ctx.spark
    rng = np.random.default_rng(ctx.seed())
    live = _first_release(ctx)
    good = daily_sales_rows(ctx.seed(), int(rng.integers(6, 10)))
    bad = [DEFECTS[i] for i in rng.permutation(len(DEFECTS))]
    later = daily_sales_rows(ctx.seed(2), int(rng.integers(6, 10)))
    releases = [("1.0.0", good, GOLD_SALES_SCHEMA, None)]
    releases += [(f"1.{n}.0", d.damage(list(good), rng), d.schema, d) for n, d in enumerate(bad, start=1)]
    releases.append((f"1.{len(bad) + 1}.0", later, GOLD_SALES_SCHEMA, None))
    before = latest_version(Path(live))
    for version, rows, schema, defect in releases:
        published = promote(spark, spark.createDataFrame(rows, schema), live)
        after = latest_version(Path(live))
        if defect is None:
            expect(
                published is True and after == before + 1,
                "a release that meets its contract is published, in one commit",
                f"release {version} ({len(rows)} good days): promote returned {published!r}, "
                f"live version {before} → {after}",
            )
            expect(
                _live_rows(spark, live) == Counter(rows),
                "the live table is exactly the published release",
                f"release {version}: live rows differ from the release's {len(rows)} rows",
            )
        else:
            expect(
                after == before,
                "a release that breaks its contract never goes live (no commit at all)",
                f"release {version} with {defect.name} ({defect.story}) went live: version {before} → {after}",
            )
            expect(
                published is False,
                "promote says whether it published (False for a blocked release)",
                f"release {version} with {defect.name} was blocked, but promote returned {published!r}",
            )
        before = after
    return (
        f"{len(releases)} releases: 2 good ones published in one commit each, {len(bad)} blocked with the live table "
        f"untouched ({', '.join(d.name for d in bad)})"
    )


# ---------------------------------------------------------------------------------- verify and roll back


@dataclass
class Ledger:
    """What a published gold_daily_sales must reconcile with (the silver orders), and the versions verified."""

    spark: SparkSession
    live: str
    orders: int
    revenue: Decimal
    verified: list[int]

    def verify(self, version: int) -> list[str]:
        """The check's verification of the live table at `version`: totals equal the ledger's."""
        self.verified.append(version)
        row = (
            self.spark.read.format("delta")
            .option("versionAsOf", version)
            .load(self.live)
            .selectExpr("sum(orders) AS orders", "sum(revenue) AS revenue")
            .first()
        )
        assert row is not None
        problems = []
        if row["orders"] != self.orders:
            problems.append(f"orders: live {row['orders']} vs ledger {self.orders}")
        if row["revenue"] is None or abs(row["revenue"] - self.revenue) > Decimal("0.01"):
            problems.append(f"revenue: live {row['revenue']} vs ledger {self.revenue}")
        return problems


def check_verify_rollback(learner: LearnerCode, ctx: CheckContext) -> str:
    """A release that verifies stays live; one that does not is published, verified live, and RESTOREd to blue."""
    publish_and_verify = learner.function("publish_and_verify", ("spark", "release", "live", "verify"))
    spark = ctx.spark
    rng = np.random.default_rng(ctx.seed())
    live = _first_release(ctx)
    good = daily_sales_rows(ctx.seed(), int(rng.integers(6, 10)))
    ledger = Ledger(spark, live, sum(r[1] for r in good), sum((r[2] for r in good), Decimal(0)), [])
    factor = int(rng.integers(2, 4))
    wrong = [(r[0], r[1], r[2] * factor, r[3]) for r in good]

    blue = latest_version(Path(live))
    kept = publish_and_verify(spark, spark.createDataFrame(good, GOLD_SALES_SCHEMA), live, ledger.verify)
    green = latest_version(Path(live))
    expect(
        green == blue + 1 and ledger.verified == [green],
        "the release is published in one commit and verified as the live table's new version",
        f"live version {blue} → {green}; verify was called for version(s) {ledger.verified}",
    )
    expect(
        kept is True and _live_rows(spark, live) == Counter(good),
        "a release that verifies stays live",
        f"publish_and_verify returned {kept!r}; live holds {sum(_live_rows(spark, live).values())} rows, "
        f"the release {len(good)}",
    )

    blue, ledger.verified = green, []
    kept = publish_and_verify(spark, spark.createDataFrame(wrong, GOLD_SALES_SCHEMA), live, ledger.verify)
    expect(
        ledger.verified == [blue + 1],
        "verification runs on the live table after the swap (the version the publish created)",
        f"verify was called for version(s) {ledger.verified}; the publish should have created version {blue + 1}",
    )
    since_blue = [
        (c.version, c.operation, c.parameters.get("version")) for c in table_commits(Path(live)) if c.version > blue
    ]
    restored = _live_rows(spark, live) == Counter(good)
    rolled_back = bool(since_blue) and since_blue[-1][1] == "RESTORE" and str(since_blue[-1][2]) == str(blue)
    expect(
        restored and len(since_blue) == 2 and rolled_back,
        "a release that fails verification is rolled back with RESTORE to blue: production is blue again",
        f"revenue x{factor} failed verification; commits since blue (v{blue}): "
        + ", ".join(f"v{v} {op}" + (f" to v{to}" if to is not None else "") for v, op, to in since_blue)
        + ("; live holds blue's rows" if restored else "; live does not hold blue's rows (the last good release)"),
    )
    expect(
        kept is False,
        "publish_and_verify says the release was rolled back (False)",
        f"publish_and_verify returned {kept!r}",
    )
    now = since_blue[-1][0]
    return (
        f"good release: one commit (v{blue}), verified live, kept; revenue x{factor}: published as v{blue + 1}, "
        f"failed verification, RESTOREd to v{blue} in v{now}; the failed build stays in the history (v{blue + 1})"
    )
