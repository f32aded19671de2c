"""Data mesh: domain data products with contracts, a self-serve platform and federated governance.

Why it matters in production: a central data team that owns every pipeline becomes the bottleneck
and the single point of misunderstanding. A data mesh hands ownership to the domains that know the
data (orders, customers, marketing), each publishing *data products* with a contract. That only
works if a platform makes the right thing the easy thing (one publish step that checks everything)
and if the rules everyone must follow are code that runs on every product, not a wiki page: PII
masked for everyone but its owner, freshness SLAs met, no breaking change without a major version.

Learning objectives:
- Publish domain data products as Delta tables under `catalog.schema.table` names, each with a
  contract in the Open Data Contract Standard (ODCS v3.2 YAML, validated by its official schema)
- Gate every publish on the contract: owner, semantic version, schema, quality rules, PII
  classification; register products in a searchable catalog (domain, tag, owner, free text)
- Consume across domains only through published products and granted (masked) views, with
  lineage recorded by the platform and checked against the lineage the contract declares
- Evaluate global policies across every product into a compliance report
- Detect a breaking change, block it as a minor release, accept it as a major one, and find the
  downstream consumers it breaks
- Share a product with another organisation (Delta Sharing, Snowflake secure share) read-only

Run it:
    python expert/integration/04_data_mesh.py [--rows N]
    expert run integration/04
Locally: Spark + Delta Lake (each Unity Catalog `catalog.schema` is the database `catalog__schema`
of Spark's one session catalog), a SQLite product catalog, fakesnow for the Snowflake share. With
Snowflake credentials in .env the product, its secure view and the share are created on the
account; Unity Catalog grants, column masks and Delta Sharing statements are shown for a workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from expert.runtime.contracts import (
    ContractError,
    DataContract,
    QualityRule,
    platform_problems,
    schema_problems,
    version_gate,
)
from expert.runtime.data import DAYS, EPOCH, EcommerceWorld
from expert.runtime.errors import ExpertError
from expert.runtime.pattern import PatternRun, run_pattern
from expert.runtime.snowflake_ddl import AddShareAccounts, GrantTarget, GrantToShare, Share, SharePrivilege

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

CONTRACTS = Path(__file__).resolve().parent / "contracts"
ORDERS_V1 = CONTRACTS / "orders" / "orders.odcs.yaml"
ORDERS_V2 = CONTRACTS / "orders" / "orders-v2.odcs.yaml"
CUSTOMERS = CONTRACTS / "customers" / "customer_profile.odcs.yaml"
MARKETING = CONTRACTS / "marketing" / "customer_value.odcs.yaml"

MESH_CLOCK = (EPOCH + timedelta(days=DAYS)).replace(tzinfo=None)
"""The generated world's clock stops after its 30 days: freshness is measured against that
instant (UTC), so the compliance report is the same on every run."""
SHARED_SCHEMA = "shared"
"""Each producer's schema for the views it grants to consumer domains."""
HIGH_VALUE, MEDIUM_VALUE = 500, 100
"""Revenue thresholds of the marketing value tiers (the contract documents them)."""
DELTA_SHARE, RECIPIENT = "marketing_customer_value", "adpartner"
SNOWFLAKE_SHARE, PARTNER_ACCOUNT = "MARKETING_CUSTOMER_VALUE", "PARTNERORG.ADPARTNER"

PII_VALUE_PATTERNS = {
    "email address": r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$",
    "phone number": r"^\+?[0-9][0-9 ().-]{6,}[0-9]$",
    "IPv4 address": r"^(\d{1,3}\.){3}\d{1,3}$",
}
PII_NAME = re.compile(r"(^|_)(first|last|full|middle|given|family)_?name$|birth|^dob$|email|phone|ssn|passport|address")
PII_MATCH_SHARE = 0.5
"""A string column is personal data when at least half its values match a PII pattern."""
MASKS = {
    "hash": "sha2(lower({c}), 256)",
    "redact": "CAST(NULL AS {t})",
    "last4": "concat('***', right({c}, 4))",
    "year": "make_date(year({c}), 1, 1)",
}
"""Spark SQL per anonymization strategy: what a non-owner sees instead of a protected value."""
POLICIES = (
    "contract-valid",
    "schema-matches-contract",
    "quality-rules-pass",
    "pii-classified",
    "pii-masked-for-non-owners",
    "freshness-sla",
    "lineage-declared",
    "shares-expose-no-pii",
)


# --- Names: Unity Catalog's three levels on Spark's one session catalog -----------------------


@dataclass(frozen=True)
class TableName:
    """`catalog.schema.table` as in Unity Catalog, and where it lives in the local session catalog.

    Spark's session catalog (`spark_catalog`) has one catalog, so the platform maps the catalog and
    schema to one database, `catalog__schema`, stored under `lake/<catalog>/<schema>/`.
    """

    catalog: str
    schema: str
    table: str

    @classmethod
    def parse(cls, name: str) -> TableName:
        parts = name.split(".")
        if len(parts) != 3 or not all(re.fullmatch(r"[a-z][a-z0-9_]*", p) for p in parts):
            raise ValueError(f"{name!r} is not a lower-case catalog.schema.table name")
        return cls(*parts)

    @property
    def uc(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.table}"

    @property
    def database(self) -> str:
        return f"{self.catalog}__{self.schema}"

    @property
    def local(self) -> str:
        return f"{self.database}.{self.table}"

    def path(self, lake: Path) -> Path:
        return lake / self.catalog / self.schema / self.table


def consumer_view(product: str, consumer: str) -> TableName:
    """The view a consumer domain is granted: in the producer's catalog, `shared` schema."""
    name = TableName.parse(product)
    return TableName(name.catalog, SHARED_SCHEMA, f"{name.table}_for_{consumer}")


def delta_version(location: Path) -> int:
    """The table's latest version: the highest commit file in `_delta_log` (the Delta protocol)."""
    commits = [int(p.stem) for p in (location / "_delta_log").glob("*.json") if p.stem.isdigit()]
    return max(commits) if commits else -1


def committed_rows(location: Path) -> int:
    """Rows the table's latest commit wrote, as the Delta log records them (`operationMetrics`)."""
    version = delta_version(location)
    for line in (location / "_delta_log" / f"{version:020d}.json").read_text().splitlines():
        action = json.loads(line)
        if "commitInfo" in action:
            return int(action["commitInfo"].get("operationMetrics", {}).get("numOutputRows", -1))
    return -1


@contextlib.contextmanager
def expected_failure() -> Iterator[None]:
    """Keep PySpark's error log quiet while a statement that must fail runs: the failure is the proof.

    PySpark logs every SQL analysis error (as JSON, on stderr) through its `SQLQueryContextLogger`
    before raising it; the exception itself still reaches the caller.
    """
    from pyspark.logger import PySparkLogger

    logger = PySparkLogger.getLogger("SQLQueryContextLogger")
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before


# --- The product catalog: a small SQL database, like the metastore behind Unity Catalog ---------


CATALOG_DDL = """
CREATE TABLE IF NOT EXISTS products (
  product TEXT PRIMARY KEY, domain TEXT NOT NULL, owner TEXT NOT NULL, team TEXT, version TEXT NOT NULL,
  status TEXT, purpose TEXT, location TEXT, delta_version INTEGER, rows INTEGER, fingerprint TEXT,
  contract TEXT NOT NULL, published_at TEXT, compliance TEXT DEFAULT 'not yet evaluated');
CREATE TABLE IF NOT EXISTS product_versions (
  product TEXT, version TEXT, delta_version INTEGER, published_at TEXT, PRIMARY KEY (product, version));
CREATE TABLE IF NOT EXISTS tags (product TEXT, tag TEXT, PRIMARY KEY (product, tag));
CREATE TABLE IF NOT EXISTS columns (
  product TEXT, name TEXT, physical_type TEXT, required INTEGER, classification TEXT, PRIMARY KEY (product, name));
CREATE TABLE IF NOT EXISTS grants (product TEXT, consumer TEXT, view TEXT, PRIMARY KEY (product, consumer));
CREATE TABLE IF NOT EXISTS lineage (
  upstream TEXT, upstream_version TEXT, upstream_delta_version INTEGER, via TEXT, columns TEXT,
  downstream TEXT, downstream_version TEXT, PRIMARY KEY (upstream, downstream, downstream_version));
CREATE TABLE IF NOT EXISTS shares (
  share TEXT, platform TEXT, product TEXT, recipient TEXT, PRIMARY KEY (share, platform, product));
CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(product UNINDEXED, text);
"""


class ProductCatalog:
    """Registered products, their versions, tags, columns, grants, lineage and shares; searchable."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(CATALOG_DDL)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(sql, params).fetchall()]

    def register(
        self, contract: DataContract, *, location: Path, delta_version: int, rows: int, fingerprint: str
    ) -> None:
        """Upsert the product and its version; rewrite its tags, columns and search text."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        product = contract.product
        with self.db:
            self.db.execute(
                """INSERT INTO products (product, domain, owner, team, version, status, purpose, location,
                     delta_version, rows, fingerprint, contract, published_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT (product) DO UPDATE SET version=excluded.version, owner=excluded.owner,
                     team=excluded.team, status=excluded.status, purpose=excluded.purpose,
                     delta_version=excluded.delta_version, rows=excluded.rows, fingerprint=excluded.fingerprint,
                     contract=excluded.contract, published_at=excluded.published_at""",
                (
                    product,
                    contract.domain,
                    contract.owner,
                    contract.team,
                    contract.version,
                    contract.status,
                    contract.purpose,
                    str(location),
                    delta_version,
                    rows,
                    fingerprint,
                    json.dumps(contract.document, default=str),
                    now,
                ),
            )
            self.db.execute(
                "INSERT OR REPLACE INTO product_versions VALUES (?,?,?,?)",
                (product, contract.version, delta_version, now),
            )
            self.db.execute("DELETE FROM tags WHERE product = ?", (product,))
            self.db.executemany("INSERT INTO tags VALUES (?,?)", [(product, t) for t in catalog_tags(contract)])
            self.db.execute("DELETE FROM columns WHERE product = ?", (product,))
            self.db.executemany(
                "INSERT INTO columns VALUES (?,?,?,?,?)",
                [(product, c.name, c.physical_type, int(c.required), c.classification) for c in contract.columns],
            )
            self.db.execute("DELETE FROM search WHERE product = ?", (product,))
            self.db.execute("INSERT INTO search VALUES (?,?)", (product, search_text(contract)))

    def contract(self, product: str) -> DataContract | None:
        rows = self.query("SELECT contract FROM products WHERE product = ?", (product,))
        return DataContract(json.loads(rows[0]["contract"]), f"catalog:{product}") if rows else None

    def product(self, product: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM products WHERE product = ?", (product,))
        return rows[0] if rows else None

    def record_grant(self, product: str, consumer: str, view: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO grants VALUES (?,?,?)", (product, consumer, view))

    def record_lineage(self, downstream: DataContract, reads: Sequence[Read]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO lineage VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        r.product,
                        r.version,
                        r.delta_version,
                        r.via,
                        ",".join(r.columns),
                        downstream.product,
                        downstream.version,
                    )
                    for r in reads
                ],
            )

    def record_share(self, share: str, platform: str, product: str, recipient: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO shares VALUES (?,?,?,?)", (share, platform, product, recipient))

    def downstream_of(self, product: str) -> list[dict[str, Any]]:
        """Every product built from `product`, directly or transitively (a recursive graph query)."""
        return self.query(
            """WITH RECURSIVE impacted(product, via, columns, depth) AS (
                 SELECT downstream, upstream, columns, 1 FROM lineage WHERE upstream = ?
                 UNION
                 SELECT l.downstream, l.upstream, l.columns, i.depth + 1
                 FROM lineage l JOIN impacted i ON l.upstream = i.product)
               SELECT i.product, i.via, i.columns, i.depth, p.version, p.owner
               FROM impacted i JOIN products p ON p.product = i.product ORDER BY i.depth, i.product""",
            (product,),
        )

    def set_compliance(self, product: str, status: str) -> None:
        with self.db:
            self.db.execute("UPDATE products SET compliance = ? WHERE product = ?", (status, product))


def registered(catalog: ProductCatalog, product: str) -> DataContract:
    """The contract a product was published with, as the catalog holds it."""
    contract = catalog.contract(product)
    if contract is None:
        raise ExpertError(f"{product} is not registered in the catalog", "publish it first (run the steps in order)")
    return contract


def catalog_tags(contract: DataContract) -> list[str]:
    """The contract's tags plus what the platform derives: `pii` when any column is protected."""
    tags = set(contract.tags)
    if contract.protected_columns:
        tags.add("pii")
    return sorted(tags)


def search_text(contract: DataContract) -> str:
    """What free-text search matches: name, purpose, usage, column names and descriptions."""
    description = contract.document.get("description") or {}
    parts = [contract.product, contract.purpose, str(description.get("usage", ""))]
    parts += [f"{c.name} {c.description}" for c in contract.columns]
    return " ".join(parts)


# --- The self-serve platform: publish gates, grants, reads with lineage -------------------------


@dataclass(frozen=True)
class Gate:
    gate: str
    passed: bool | None
    detail: str


@dataclass(frozen=True)
class Profile:
    """Everything the gates need from the data, measured in one pass (plus one query per SQL rule)."""

    rows: int
    rule_values: Mapping[str, float]
    nulls: Mapping[str, int]
    pii_findings: Mapping[str, str]
    newest: datetime | None
    fingerprint: str


@dataclass
class PublishResult:
    product: str
    version: str
    outcome: str
    gates: list[Gate]
    rows: int = 0
    delta_version: int | None = None
    profile: Profile | None = None
    changes: tuple[Any, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.outcome != "rejected"


@dataclass(frozen=True)
class Read:
    """One read of a published product by another domain: what lineage records."""

    product: str
    version: str
    delta_version: int
    via: str
    columns: tuple[str, ...]


class AccessDeniedError(Exception):
    """A domain asked for a product it was not granted."""


class MeshPlatform:
    """What every domain uses to publish, grant and read: the only path between domains."""

    def __init__(self, run: PatternRun, catalog: ProductCatalog) -> None:
        self.spark = run.spark
        self.catalog = catalog
        self.lake = run.workdir / "lake"

    def location(self, product: str) -> Path:
        return TableName.parse(product).path(self.lake)

    def ensure_database(self, name: TableName) -> None:
        path = self.lake / name.catalog / name.schema
        self.spark.sql(f"CREATE DATABASE IF NOT EXISTS {name.database} LOCATION '{path}'")

    def table_exists(self, product: str) -> bool:
        return (self.location(product) / "_delta_log").is_dir()

    def publish(self, contract: DataContract, candidate: DataFrame, reads: Sequence[Read] = ()) -> PublishResult:
        """Validate `candidate` against `contract`; write and register it only if every gate passes.

        Contract gates run first (cheap, no data touched); data gates profile the candidate in one
        pass. A re-publish of the same version with the same content is a no-op.
        """
        result = PublishResult(contract.product, contract.version, "rejected", [])
        if not self.contract_gates(contract, result):
            result.gates.append(Gate("data gates", None, "not run: the contract was rejected first"))
            return result
        view = f"candidate_{TableName.parse(contract.product).table}"
        profile = self.data_gates(contract, candidate, view, result)
        if profile is None:
            return result
        registered = self.catalog.product(contract.product)
        same_version = registered is not None and registered["version"] == contract.version
        if same_version and registered and registered["fingerprint"] == profile.fingerprint:
            result.outcome, result.delta_version = "unchanged", int(registered["delta_version"])
            return result
        self.write(contract, view, replace=not same_version)
        location = self.location(contract.product)
        result.outcome = "refreshed" if same_version else "published"
        result.delta_version = delta_version(location)
        self.catalog.register(
            contract,
            location=location,
            delta_version=result.delta_version,
            rows=profile.rows,
            fingerprint=profile.fingerprint,
        )
        if reads:
            self.catalog.record_lineage(contract, reads)
        for grant in self.catalog.query("SELECT consumer FROM grants WHERE product = ?", (contract.product,)):
            self.create_consumer_view(contract, grant["consumer"])
        return result

    def contract_gates(self, contract: DataContract, result: PublishResult) -> bool:
        """The standard, the platform rules, an owner, and the semantic-version gate."""
        problems = schema_problems(contract.document) + platform_problems(contract)
        decision = version_gate(self.catalog.contract(contract.product), contract)
        result.changes = decision.changes
        result.gates += [
            Gate("contract valid (ODCS schema + platform rules)", not problems, "; ".join(problems) or "ok"),
            Gate("owner named", contract.owner is not None, contract.owner or "no member with role owner"),
            Gate("semantic version", decision.allowed, decision.reason),
        ]
        return all(g.passed for g in result.gates)

    def data_gates(
        self, contract: DataContract, candidate: DataFrame, view: str, result: PublishResult
    ) -> Profile | None:
        """Schema, quality rules, required columns and PII classification; the profile if all pass."""
        expected = [(c.name, c.physical_type) for c in contract.columns]
        actual = [(f.name, f.dataType.simpleString()) for f in candidate.schema.fields]
        result.gates.append(Gate("schema matches contract", actual == expected, schema_diff_text(expected, actual)))
        if actual != expected:
            return None
        candidate.createOrReplaceTempView(view)
        profile = profile_candidate(self.spark, candidate, contract, view)
        result.profile, result.rows = profile, profile.rows
        rules = contract.quality_rules
        failed = [r for r in rules if not r.passes(profile.rule_values[r.id])]
        nulls = {c.name: profile.nulls[c.name] for c in contract.columns if c.required and profile.nulls[c.name]}
        unclassified = {k: v for k, v in profile.pii_findings.items() if not contract.column(k).protected}
        result.gates += [
            Gate(
                f"quality rules ({len(rules) - len(failed)}/{len(rules)})",
                not failed,
                "; ".join(f"{r.id}: {profile.rule_values[r.id]:g}, expected {r.expectation}" for r in failed) or "ok",
            ),
            Gate(
                "required columns have no nulls",
                not nulls,
                ", ".join(f"{k}: {v} nulls" for k, v in nulls.items()) or "ok",
            ),
            Gate(
                "PII classified",
                not unclassified,
                "; ".join(f"{k} ({contract.column(k).classification}): {v}" for k, v in unclassified.items())
                or (
                    f"{len(profile.pii_findings)} PII column(s) found, all restricted"
                    if profile.pii_findings
                    else "no personal data found"
                ),
            ),
        ]
        return profile if all(g.passed for g in result.gates) else None

    def write(self, contract: DataContract, view: str, *, replace: bool) -> None:
        """The contract becomes the table: its DDL (types, NOT NULL, comments) and properties."""
        name = TableName.parse(contract.product)
        self.ensure_database(name)
        if replace:
            props = {
                "mesh.contract.id": contract.id,
                "mesh.contract.version": contract.version,
                "mesh.owner": contract.owner or "",
                "mesh.domain": contract.domain,
            }
            properties = ", ".join(f"'{k}' = {sql_literal(v)}" for k, v in props.items())
            self.spark.sql(
                f"CREATE OR REPLACE TABLE {name.local} ({column_ddl(contract)}) USING DELTA "
                f"LOCATION '{self.location(contract.product)}' COMMENT {sql_literal(contract.purpose)} "
                f"TBLPROPERTIES ({properties})"
            )
        columns = ", ".join(c.name for c in contract.columns)
        self.spark.sql(f"INSERT OVERWRITE TABLE {name.local} SELECT {columns} FROM {view}")

    def grant(self, product: str, consumer: str) -> TableName:
        """Give a consumer domain read access: a view that anonymises every protected column."""
        contract = self.catalog.contract(product)
        if contract is None:
            raise AccessDeniedError(f"{product} is not a published product")
        view = self.create_consumer_view(contract, consumer)
        self.catalog.record_grant(product, consumer, view.uc)
        return view

    def create_consumer_view(self, contract: DataContract, consumer: str) -> TableName:
        view = consumer_view(contract.product, consumer)
        self.ensure_database(view)
        self.spark.sql(
            f"CREATE OR REPLACE VIEW {view.local} COMMENT {sql_literal(f'{contract.product} for {consumer}')} "
            f"AS SELECT {masked_select(contract)} FROM {TableName.parse(contract.product).local}"
        )
        return view

    def reader(self, domain: str) -> DomainReader:
        return DomainReader(self, domain)


class DomainReader:
    """How one domain reads others' products: through its granted view, every read recorded."""

    def __init__(self, platform: MeshPlatform, domain: str) -> None:
        self.platform = platform
        self.domain = domain
        self.reads: list[Read] = []

    def read(self, product: str, columns: Sequence[str]) -> DataFrame:
        catalog = self.platform.catalog
        registered = catalog.product(product)
        if registered is None:
            raise AccessDeniedError(f"{product} is not a published product")
        if registered["domain"] == self.domain:
            source = TableName.parse(product)
        else:
            grant = catalog.query("SELECT view FROM grants WHERE product = ? AND consumer = ?", (product, self.domain))
            if not grant:
                raise AccessDeniedError(f"{self.domain} has no grant on {product}: request access first")
            source = TableName.parse(grant[0]["view"])
        self.reads.append(
            Read(product, registered["version"], int(registered["delta_version"]), source.uc, tuple(columns))
        )
        return self.platform.spark.table(source.local).select(*columns)


def column_ddl(contract: DataContract) -> str:
    return ", ".join(
        f"{c.name} {c.physical_type.upper()}{' NOT NULL' if c.required else ''} COMMENT {sql_literal(c.description)}"
        for c in contract.columns
    )


def masked_select(contract: DataContract) -> str:
    """The consumer view's select list: protected columns through their anonymization strategy."""
    items = []
    for c in contract.columns:
        if c.protected and c.anonymization:
            items.append(f"{MASKS[c.anonymization].format(c=c.name, t=c.physical_type.upper())} AS {c.name}")
        else:
            items.append(c.name)
    return ", ".join(items)


def sql_literal(text: str) -> str:
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def schema_diff_text(expected: Sequence[tuple[str, str]], actual: Sequence[tuple[str, str]]) -> str:
    if expected == actual:
        return f"{len(expected)} columns, names and types as contracted"
    missing = [f"{n} {t}" for n, t in expected if (n, t) not in actual]
    extra = [f"{n} {t}" for n, t in actual if (n, t) not in expected]
    return f"expected but missing: {missing or 'none'}; unexpected: {extra or 'none'}"


def profile_candidate(spark: SparkSession, df: DataFrame, contract: DataContract, view: str) -> Profile:
    """One aggregation for counts, quality metrics, PII patterns, freshness and a content fingerprint."""
    from pyspark.sql import functions as F

    exprs = [F.count(F.lit(1)).alias("rows")]
    exprs += [F.sum(F.col(c.name).isNull().cast("long")).alias(f"nulls__{c.name}") for c in contract.columns]
    for rule in contract.quality_rules:
        metric = metric_expression(rule)
        if metric is not None:
            exprs.append(metric.alias(f"rule__{rule.id}"))
    strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
    for name in strings:
        exprs.append(F.count(F.col(name)).alias(f"present__{name}"))
        for i, pattern in enumerate(PII_VALUE_PATTERNS.values()):
            exprs.append(F.sum(F.col(name).rlike(pattern).cast("long")).alias(f"pii{i}__{name}"))
    latency = contract.latency
    if latency:
        exprs.append(F.max(latency.column).alias("newest"))
    exprs.append(F.sum(F.xxhash64(*df.columns).cast("decimal(38,0)")).alias("fingerprint"))
    row = df.agg(*exprs).first().asDict()
    rows = int(row["rows"])
    return Profile(
        rows=rows,
        rule_values=rule_values(spark, contract, row, view),
        nulls={c.name: int(row[f"nulls__{c.name}"] or 0) for c in contract.columns},
        pii_findings=pii_findings(df, row, strings),
        newest=row.get("newest"),
        fingerprint=f"{row['fingerprint'] or 0}:{rows}",
    )


def rule_values(spark: SparkSession, contract: DataContract, row: Mapping[str, Any], view: str) -> dict[str, float]:
    """Each quality rule's measured value: from the profile row, or its own SQL query (`{object}` = view)."""
    rows = int(row["rows"])
    values: dict[str, float] = {}
    for rule in contract.quality_rules:
        if rule.query:
            query = rule.query.replace("{object}", view).replace("{property}", rule.column or "")
            value = float(spark.sql(query).first()[0])
        elif rule.metric == "rowCount":
            value = float(rows)
        else:
            value = float(row[f"rule__{rule.id}"] or 0)
        if rule.unit == "percent" and rule.metric != "rowCount":
            value = 100.0 * value / rows if rows else 0.0
        values[rule.id] = value
    return values


def pii_findings(df: DataFrame, row: Mapping[str, Any], strings: Sequence[str]) -> dict[str, str]:
    """Columns that hold personal data, judged by their values (patterns) or, failing that, their names."""
    findings: dict[str, str] = {}
    for name in df.columns:
        present = int(row.get(f"present__{name}") or 0) if name in strings else 0
        for i, label in enumerate(PII_VALUE_PATTERNS):
            share = int(row[f"pii{i}__{name}"] or 0) / present if present else 0.0
            if share >= PII_MATCH_SHARE:
                findings[name] = f"{share:.0%} of values look like a {label}"
        if name not in findings and PII_NAME.search(name):
            findings[name] = "the column name says personal data"
    return findings


def metric_expression(rule: QualityRule) -> Any:
    """The Spark aggregate that measures an ODCS library metric (None for SQL rules and rowCount)."""
    from pyspark.sql import functions as F

    if rule.query or rule.metric == "rowCount":
        return None
    args = rule.arguments
    if rule.metric == "duplicateValues":
        cols = [rule.column] if rule.column else list(args.get("properties", []))
        complete = reduce(operator.and_, [F.col(c).isNotNull() for c in cols])
        return F.count(F.when(complete, 1)) - F.count_distinct(*[F.col(c) for c in cols])
    col = F.col(rule.column or "")
    if rule.metric == "nullValues":
        return F.sum(col.isNull().cast("long"))
    if rule.metric == "missingValues":
        missing = [v for v in args.get("missingValues", [None]) if v is not None]
        return F.sum((col.isNull() | col.isin(missing)).cast("long"))
    if rule.metric == "invalidValues":
        if "validValues" in args:
            return F.sum((col.isNotNull() & ~col.isin(list(args["validValues"]))).cast("long"))
        return F.sum((col.isNotNull() & ~col.rlike(str(args["pattern"]))).cast("long"))
    raise ExpertError(f"quality rule {rule.id}: metric {rule.metric!r} is not supported", "use an ODCS library metric")


# --- Domain pipelines --------------------------------------------------------------------------


def cast_to_contract(frame: pd.DataFrame, contract: DataContract, spark: SparkSession) -> DataFrame:
    """A domain's last transform: select and cast its data to exactly the contracted columns."""
    from pyspark.sql import functions as F

    df = spark.createDataFrame(frame[[c.name for c in contract.columns if c.name in frame.columns]])
    return df.select(*[F.col(c.name).cast(c.physical_type).alias(c.name) for c in contract.columns])


def clean_orders(raw: DataFrame) -> DataFrame:
    """The orders domain's fix for its feed: drop rows without a key, keep one row per order."""
    return raw.where("order_id IS NOT NULL").dropDuplicates(["order_id"])


def build_customer_value(reader: DomainReader) -> DataFrame:
    """Marketing's product, built only from the orders and customers products it was granted."""
    from pyspark.sql import functions as F

    customers = reader.read("customers.products.customer_profile", ["customer_id", "country", "segment", "birth_date"])
    orders = reader.read("orders.products.orders", ["order_id", "customer_id", "amount", "order_ts"])
    per_customer = orders.groupBy("customer_id").agg(
        F.count("order_id").alias("orders_count"),
        F.sum("amount").alias("revenue"),
        F.max("order_ts").alias("last_order_ts"),
    )
    age = F.lit(MESH_CLOCK.year) - F.year("birth_date")
    revenue = F.coalesce(F.col("revenue"), F.lit(0)).cast("decimal(14,2)")
    return (
        customers.join(per_customer, "customer_id", "left")
        .select(
            "customer_id",
            "country",
            "segment",
            F.when(age < 35, "18-34").when(age < 55, "35-54").when(age.isNotNull(), "55+").alias("age_band"),
            F.coalesce("orders_count", F.lit(0)).cast("bigint").alias("orders_count"),
            revenue.alias("revenue"),
            "last_order_ts",
            F.when(revenue >= HIGH_VALUE, "high")
            .when(revenue >= MEDIUM_VALUE, "medium")
            .otherwise("low")
            .alias("value_tier"),
        )
        .orderBy("customer_id")
    )


def publishable_orders(world: EcommerceWorld) -> pd.DataFrame:
    """The generator's orders minus those whose key the feed lost: no pipeline can publish those."""
    raw, _ = world.deliver("orders", "order_id")
    return world.orders[world.orders["order_id"].isin(raw["order_id"].dropna())]


def expected_customer_value(world: EcommerceWorld) -> pd.DataFrame:
    """Ground truth for marketing's product, computed in pandas straight from the generator."""
    orders = (
        publishable_orders(world)
        .groupby("customer_id")
        .agg(orders_count=("order_id", "count"), revenue=("amount", "sum"), last_order_ts=("order_ts", "max"))
    )
    out = world.customers[["customer_id", "country", "segment", "birth_date"]].merge(
        orders, on="customer_id", how="left"
    )
    out["orders_count"] = out["orders_count"].fillna(0).astype("int64")
    out["revenue"] = out["revenue"].fillna(0.0).round(2)
    age = MESH_CLOCK.year - pd.to_datetime(out["birth_date"]).dt.year
    out["age_band"] = ["18-34" if a < 35 else "35-54" if a < 55 else "55+" for a in age]
    out["value_tier"] = [
        "high" if r >= HIGH_VALUE else "medium" if r >= MEDIUM_VALUE else "low" for r in out["revenue"]
    ]
    return out.drop(columns=["birth_date"]).sort_values("customer_id").reset_index(drop=True)


# --- Steps -------------------------------------------------------------------------------------


def load_contracts(run: PatternRun) -> dict[str, DataContract]:
    """Read every domain's ODCS contract; a contract the standard or the platform rejects stops the run."""
    contracts = {}
    for path in (ORDERS_V1, CUSTOMERS, MARKETING, ORDERS_V2):
        try:
            contract = DataContract.load(path)
        except ContractError as exc:
            raise ExpertError(f"contract {path.name} is not valid ODCS: {exc}", f"fix {path}") from None
        problems = platform_problems(contract)
        if problems:
            raise ExpertError(f"contract {path.name} breaks the platform rules: {'; '.join(problems)}", f"fix {path}")
        contracts[path.name] = contract
    rows = [
        {
            "product": c.product,
            "version": c.version,
            "owner": c.owner,
            "columns": len(c.columns),
            "restricted": len(c.protected_columns),
            "rules": len(c.quality_rules),
            "freshness": f"{c.latency.column} {c.latency.text}" if c.latency else "-",
        }
        for c in contracts.values()
    ]
    run.table(rows, title="Contracts (ODCS v3.2.0 YAML, one folder per domain)")
    run.check(
        "every shipped contract passes the official ODCS JSON Schema and the platform rules",
        len(contracts) == 4,
        f"{len(contracts)} contracts: {', '.join(f'{c.product} {c.version}' for c in contracts.values())}",
    )
    typo = contracts[ORDERS_V1.name].to_document()
    typo["schema"][0]["properties"][0]["requried"] = True
    problems = schema_problems(typo)
    run.say(f"A contract with the misspelt key `requried` is rejected: {problems[0] if problems else 'accepted!'}")
    run.check(
        "a contract with a misspelt key is rejected by the standard's schema",
        bool(problems),
        problems[0] if problems else "",
    )
    return contracts


def prepare_namespaces(run: PatternRun, contracts: Mapping[str, DataContract]) -> None:
    """One namespace per domain: `<domain>.products` for products, `<domain>.shared` for granted views."""
    spark = run.spark
    names = sorted({TableName.parse(c.product).catalog for c in contracts.values()})
    databases = [f"{n}__{s}" for n in names for s in ("products", SHARED_SCHEMA)]
    databases.append(f"{RECIPIENT}__{DELTA_SHARE}")
    for database in databases:
        spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")
    run.table(
        [
            {"Unity Catalog": f"{n}.{s}", "local database": f"{n}__{s}", "storage": f"lake/{n}/{s}/"}
            for n in names
            for s in ("products", SHARED_SCHEMA)
        ],
        title="catalog.schema → spark_catalog database",
    )
    run.note(
        "Spark's session catalog has a single catalog, so `catalog.schema.table` maps to "
        "`spark_catalog.catalog__schema.table`. In Unity Catalog each domain gets a real catalog."
    )
    statements = []
    for n in names:
        statements += [
            f"CREATE CATALOG IF NOT EXISTS {n};",
            f"CREATE SCHEMA IF NOT EXISTS {n}.products;",
            f"CREATE SCHEMA IF NOT EXISTS {n}.{SHARED_SCHEMA};",
            f"GRANT USE CATALOG, USE SCHEMA, CREATE TABLE, MODIFY, SELECT ON CATALOG {n} TO `{n}-domain`;",
        ]
    run.cloud_only_step(
        "unity catalog",
        "\n".join(statements),
        "catalogs and grants need a Unity Catalog metastore; the local session catalog has one catalog and no grants",
    )


def show_gates(run: PatternRun, label: str, result: PublishResult) -> None:
    rows = [
        {
            "gate": g.gate,
            "result": "pass" if g.passed else "skipped" if g.passed is None else "FAIL",
            "detail": g.detail,
        }
        for g in result.gates
    ]
    run.table(rows, title=f"{label}: {result.outcome.upper()}")


def publish_orders(run: PatternRun, platform: MeshPlatform, world: EcommerceWorld, contract: DataContract) -> int:
    """Orders domain: its raw feed fails the quality gate; the cleaned product passes and is published."""
    raw_frame, dirt = world.deliver("orders", "order_id")
    raw = cast_to_contract(raw_frame, contract, run.spark)
    rejected = platform.publish(contract, raw)
    show_gates(run, "orders 1.0.0 from the raw feed", rejected)
    measured = rejected.profile
    run.check(
        "the quality gate rejects the raw orders feed and counts its defects exactly",
        not rejected.accepted
        and measured is not None
        and measured.rule_values["order_id_not_null"] == dirt.null_keys
        and measured.rule_values["order_id_unique"] == dirt.duplicates
        and not platform.table_exists(contract.product),
        f"nulls {measured.rule_values['order_id_not_null']:g} = injected {dirt.null_keys}, "
        f"duplicates {measured.rule_values['order_id_unique']:g} = injected {dirt.duplicates}; nothing written"
        if measured
        else "no profile",
    )
    cleaned = clean_orders(raw)
    result = platform.publish(contract, cleaned)
    show_gates(run, "orders 1.0.0 after the domain's cleaning", result)
    expected = dirt.clean_rows - dirt.null_keys
    written = committed_rows(platform.location(contract.product))
    run.check(
        "the cleaned orders product is published with every keyed order exactly once",
        result.outcome == "published" and written == expected == result.rows,
        f"{written:,} rows written (Delta log) = {dirt.clean_rows:,} orders - {dirt.null_keys} without a key",
    )
    return dirt.null_keys + dirt.duplicates


def publish_customers(run: PatternRun, platform: MeshPlatform, world: EcommerceWorld, contract: DataContract) -> None:
    """Customers domain: a draft that forgot to classify `phone` is refused; the real contract passes."""
    document = contract.to_document()
    phone = next(p for p in document["schema"][0]["properties"] if p["name"] == "phone")
    phone.update(classification="internal", tags=[])
    phone.pop("customProperties")
    draft = DataContract.from_document(document, "customer_profile draft (phone unclassified)")
    candidate = cast_to_contract(world.customers, contract, run.spark)
    rejected = platform.publish(draft, candidate)
    show_gates(run, "customer_profile draft, phone classified internal", rejected)
    pii_gate = next(g for g in rejected.gates if g.gate == "PII classified")
    run.check(
        "the PII gate refuses a product with an unclassified personal-data column",
        not rejected.accepted and pii_gate.passed is False and "phone" in pii_gate.detail,
        pii_gate.detail,
    )
    result = platform.publish(contract, candidate)
    show_gates(run, "customer_profile 1.0.0", result)
    run.check(
        "the customer profile is published with one row per customer",
        result.outcome == "published" and result.rows == len(world.customers),
        f"{result.rows:,} rows = {len(world.customers):,} customers",
    )


def search_catalog(run: PatternRun, catalog: ProductCatalog, contracts: Sequence[DataContract]) -> None:
    """Discover products the way a consumer does: by domain, tag, owner and free text."""
    searches = [
        (
            "domain = customers",
            "SELECT product FROM products WHERE domain = ?",
            ("customers",),
            {c.product for c in contracts if c.domain == "customers"},
        ),
        (
            "tag = pii",
            "SELECT product FROM tags WHERE tag = ?",
            ("pii",),
            {c.product for c in contracts if "pii" in catalog_tags(c)},
        ),
        (
            "tag = finance",
            "SELECT product FROM tags WHERE tag = ?",
            ("finance",),
            {c.product for c in contracts if "finance" in c.tags},
        ),
        (
            "owner = carla.customers@…",
            "SELECT product FROM products WHERE owner = ?",
            ("carla.customers@example.com",),
            {c.product for c in contracts if c.owner == "carla.customers@example.com"},
        ),
        (
            "text: email",
            "SELECT product FROM search WHERE search MATCH ?",
            ("email",),
            {c.product for c in contracts if "email" in re.findall(r"\w+", search_text(c).lower())},
        ),
    ]
    rows, agree = [], True
    for label, sql, params, expected in searches:
        found = {r["product"] for r in catalog.query(sql, params)}
        agree &= found == expected
        rows.append(
            {"search": label, "found": ", ".join(sorted(found)) or "-", "as the contracts say": found == expected}
        )
    run.table(rows, title="Catalog searches (SQLite: products, tags, columns, FTS5 full-text index)")
    run.check(
        "every catalog search returns exactly the products whose contracts match",
        agree,
        f"{len(searches)} searches over {len(contracts)} registered products",
    )


def grant_marketing_access(run: PatternRun, platform: MeshPlatform, world: EcommerceWorld) -> None:
    """Marketing asks for orders and customers; the platform grants views that mask what it may not see."""
    spark = platform.spark
    try:
        platform.reader("marketing").read("customers.products.customer_profile", ["customer_id"])
        refused = ""
    except AccessDeniedError as exc:
        refused = str(exc)
    run.check("a domain cannot read a product it was not granted", bool(refused), refused)
    views = {
        p: platform.grant(p, "marketing") for p in ("orders.products.orders", "customers.products.customer_profile")
    }
    customers_view = views["customers.products.customer_profile"]
    seen = spark.table(customers_view.local).toPandas().sort_values("customer_id")
    run.table(
        seen[["customer_id", "first_name", "email", "phone", "birth_date", "country"]].head(3).astype(str),
        title=f"What marketing sees: {customers_view.uc}",
    )
    contract = registered(platform.catalog, "customers.products.customer_profile")
    unmasked = count_unmasked_values(spark, contract, customers_view)
    truth = world.customers.set_index("customer_id")
    expected_hash = [hashlib.sha256(truth.at[i, "email"].lower().encode()).hexdigest() for i in seen["customer_id"]]
    raw_seen = set(seen["email"]) & set(truth["email"]) | set(seen["phone"]) & set(truth["phone"])
    run.check(
        "the consumer view serves every restricted column anonymised, exactly as the contract says",
        unmasked == 0 and not raw_seen and list(seen["email"]) == expected_hash,
        f"{unmasked} unmasked values in {len(contract.protected_columns)} restricted columns × {len(seen):,} rows; "
        "no raw email or phone visible; SHA-256 of email matches Python's hashlib",
    )
    run.cloud_only_step(
        "unity catalog",
        "CREATE FUNCTION customers.shared.mask_email(email STRING) RETURN CASE WHEN "
        "is_account_group_member('customers-domain') THEN email ELSE sha2(lower(email), 256) END;\n"
        "ALTER TABLE customers.products.customer_profile ALTER COLUMN email SET MASK customers.shared.mask_email;\n"
        + "\n".join(f"GRANT SELECT ON VIEW {v.uc} TO `marketing-domain`;" for v in views.values()),
        "column masks, groups and grants exist only in Unity Catalog; locally the platform's reader is the "
        "only path between domains and serves each consumer its generated view",
    )


def count_unmasked_values(spark: SparkSession, contract: DataContract, view: TableName) -> int:
    """Protected values a consumer view does not serve through their declared strategy.

    Joined back to the product on its key: every restricted value in the view must equal the
    anonymised raw value, so a view edited to expose raw data (or a mask removed) is counted.
    """
    key = contract.primary_key[0]
    table = TableName.parse(contract.product).local
    protected = [c for c in contract.protected_columns if c.anonymization]
    if not protected:
        return 0
    differs = " + ".join(
        f"CAST(NOT (v.{c.name} <=> {MASKS[c.anonymization].format(c=f't.{c.name}', t=c.physical_type.upper())}) AS INT)"
        for c in protected
    )
    sql = f"SELECT COALESCE(SUM({differs}), 0) FROM {view.local} v JOIN {table} t USING ({key})"
    return int(spark.sql(sql).first()[0])


def publish_marketing(run: PatternRun, platform: MeshPlatform, world: EcommerceWorld, contract: DataContract) -> None:
    """Marketing builds from granted products only; the platform records what it read as lineage."""
    reader = platform.reader("marketing")
    candidate = build_customer_value(reader).cache()
    result = platform.publish(contract, candidate, reads=reader.reads)
    show_gates(run, "customer_value 1.0.0", result)
    actual = candidate.toPandas()
    candidate.unpersist()
    expected = expected_customer_value(world)
    revenue_ok = (actual["revenue"].astype(float) - expected["revenue"]).abs().max() < 0.005
    same = (
        len(actual) == len(expected)
        and list(actual["customer_id"]) == list(expected["customer_id"])
        and list(actual["orders_count"]) == list(expected["orders_count"])
        and bool(revenue_ok)
        and list(actual["age_band"]) == list(expected["age_band"])
        and list(actual["value_tier"]) == list(expected["value_tier"])
    )
    run.check(
        "marketing's product equals an independent pandas computation from the generator",
        result.outcome == "published" and same,
        f"{len(actual):,} customers, {int(actual['orders_count'].sum()):,} orders, "
        f"revenue {float(actual['revenue'].astype(float).sum()):,.2f}",
    )
    run.table(
        actual.groupby("value_tier")
        .agg(customers=("customer_id", "count"), revenue=("revenue", "sum"))
        .reset_index()
        .assign(revenue=lambda d: d["revenue"].astype(float)),
        title="customer_value by tier",
    )
    observed = {r.product for r in reader.reads}
    run.table(
        [
            {
                "read": r.product,
                "version": r.version,
                "Delta version": r.delta_version,
                "via": r.via,
                "columns": ", ".join(r.columns),
            }
            for r in reader.reads
        ],
        title="Lineage recorded by the platform's reader",
    )
    run.check(
        "the lineage the platform observed equals the lineage the contract declares",
        observed == contract.declared_sources,
        f"observed {sorted(observed)} = declared {sorted(contract.declared_sources)}",
    )


def share_product(run: PatternRun, platform: MeshPlatform, contract: DataContract) -> None:
    """Share marketing's product outside the company: Delta Sharing, a Snowflake secure share, read-only."""
    spark = platform.spark
    name = TableName.parse(contract.product)
    location = platform.location(contract.product)
    config = {
        "version": 1,
        "shares": [
            {
                "name": DELTA_SHARE,
                "schemas": [{"name": name.schema, "tables": [{"name": name.table, "location": location.as_uri()}]}],
            }
        ],
        "host": "127.0.0.1",
        "port": 8080,
        "endpoint": "/delta-sharing",
    }
    config_path = run.workdir / "sharing" / "delta-sharing-server.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(
        "# Delta Sharing server config (delta-io/delta-sharing). Add `authorization` with a bearer\n"
        "# token from your secret store before serving it; never commit the token.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    platform.catalog.record_share(DELTA_SHARE, "delta sharing", contract.product, RECIPIENT)
    run.say(f"Delta Sharing server config written: {config_path.relative_to(run.workdir)}")
    run.cloud_only_step(
        "delta sharing",
        f"CREATE SHARE IF NOT EXISTS {DELTA_SHARE} COMMENT 'customer value for ad partners';\n"
        f"ALTER SHARE {DELTA_SHARE} ADD TABLE {contract.product} WITH HISTORY;\n"
        f"CREATE RECIPIENT IF NOT EXISTS {RECIPIENT} COMMENT 'ad partner (open sharing: token profile)';\n"
        f"GRANT SELECT ON SHARE {DELTA_SHARE} TO RECIPIENT {RECIPIENT};",
        "shares and recipients are Unity Catalog objects served by Databricks; locally the open-source "
        "server's config is written and a read-only recipient view stands in for the recipient's catalog",
    )
    version_before = delta_version(location)
    rows_before = int((platform.catalog.product(contract.product) or {}).get("rows", -1))
    recipient = open_share(spark, config_path, f"{DELTA_SHARE}.{name.schema}.{name.table}")
    rejected = attempt_writes(spark, recipient)
    try:
        open_share(spark, config_path, f"{DELTA_SHARE}.products.customer_profile")
        unshared = "opened!"
    except KeyError as exc:
        unshared = str(exc).strip("'\"")
    run.table([{"write attempt": k, "rejected with": v} for k, v in rejected.items()], title=f"Writes to {recipient}")
    seen = spark.table(recipient).count()
    run.check(
        "the share's recipient reads the product, cannot write to it, and sees nothing unshared",
        seen == rows_before
        and all(v != "accepted" for v in rejected.values())
        and delta_version(location) == version_before
        and unshared.startswith("not in share"),
        f"{seen:,} rows read; {len(rejected)} write attempts rejected; product still at Delta version "
        f"{version_before}; other tables: {unshared}",
    )
    share_to_snowflake(run, platform, contract)


def open_share(spark: SparkSession, config_path: Path, table: str) -> str:
    """The recipient side: resolve `share.schema.table` from the server config and mount it read-only.

    Like a Delta Sharing query, the view is pinned to the table version current when it was opened.
    """
    share_name, schema_name, table_name = table.split(".")
    config = yaml.safe_load(config_path.read_text())
    for share in config["shares"]:
        for schema in share["schemas"] if share["name"] == share_name else ():
            for entry in schema["tables"] if schema["name"] == schema_name else ():
                if entry["name"] == table_name:
                    location = Path(entry["location"].removeprefix("file://"))
                    database = f"{RECIPIENT}__{share_name}"
                    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
                    spark.sql(
                        f"CREATE OR REPLACE VIEW {database}.{table_name} AS SELECT * FROM "
                        f"delta.`{location}` VERSION AS OF {delta_version(location)}"
                    )
                    return f"{database}.{table_name}"
    raise KeyError(f"not in share {share_name}: {schema_name}.{table_name}")


def attempt_writes(spark: SparkSession, view: str) -> dict[str, str]:
    """Try every kind of write against the recipient's view; each must be refused by the engine."""
    from pyspark.errors import AnalysisException

    attempts = {
        "INSERT": f"INSERT INTO {view} SELECT * FROM {view} LIMIT 1",
        "UPDATE": f"UPDATE {view} SET revenue = 0",
        "DELETE": f"DELETE FROM {view}",
        "MERGE": f"MERGE INTO {view} t USING {view} s ON t.customer_id = s.customer_id WHEN MATCHED THEN DELETE",
    }
    outcome = {}
    for kind, sql in attempts.items():
        try:
            with expected_failure():
                spark.sql(sql)
            outcome[kind] = "accepted"
        except AnalysisException as exc:
            outcome[kind] = getattr(exc, "getCondition", lambda: None)() or str(exc).split("]")[0].strip("[")
    return outcome


def share_to_snowflake(run: PatternRun, platform: MeshPlatform, contract: DataContract) -> None:
    """Load the product into Snowflake behind a secure view and share that view with a partner account."""
    import logging

    frame = platform.spark.table(TableName.parse(contract.product).local).toPandas()
    frame.columns = [c.upper() for c in frame.columns]
    frame["REVENUE"] = frame["REVENUE"].astype(float)
    sqlglot_log = logging.getLogger("sqlglot")
    level = sqlglot_log.level
    with run.snowflake(database="MESH", schema="MARKETING") as sf:
        loaded = sf.write_pandas(frame, "CUSTOMER_VALUE", overwrite=True, use_logical_type=True)
        sqlglot_log.setLevel(logging.ERROR)
        try:
            sf.execute(
                "CREATE OR REPLACE SECURE VIEW CUSTOMER_VALUE_SHARED AS SELECT CUSTOMER_ID, COUNTRY, SEGMENT, "
                "AGE_BAND, ORDERS_COUNT, REVENUE, LAST_ORDER_TS, VALUE_TIER FROM CUSTOMER_VALUE"
            )
        finally:
            sqlglot_log.setLevel(level)
        served = int(sf.scalar("SELECT COUNT(*) FROM CUSTOMER_VALUE_SHARED"))
        view = f"{sf.database}.{sf.schema}.CUSTOMER_VALUE_SHARED"
        for statement in (
            Share(name=SNOWFLAKE_SHARE, comment="customer value for ad partners"),
            GrantToShare(
                privilege=SharePrivilege.USAGE, on=GrantTarget.DATABASE, object_name=sf.database, share=SNOWFLAKE_SHARE
            ),
            GrantToShare(
                privilege=SharePrivilege.USAGE,
                on=GrantTarget.SCHEMA,
                object_name=f"{sf.database}.{sf.schema}",
                share=SNOWFLAKE_SHARE,
            ),
            GrantToShare(privilege=SharePrivilege.SELECT, on=GrantTarget.VIEW, object_name=view, share=SNOWFLAKE_SHARE),
            AddShareAccounts(share=SNOWFLAKE_SHARE, accounts=(PARTNER_ACCOUNT,)),
        ):
            sf.cloud_only(statement, "share the secure view with the partner's account")
    platform.catalog.record_share(SNOWFLAKE_SHARE, "snowflake", contract.product, PARTNER_ACCOUNT)
    run.check(
        "Snowflake serves the product through the secure view the share exposes",
        loaded == served == len(frame),
        f"{loaded:,} rows loaded with write_pandas, {served:,} served by {view}",
    )


@dataclass
class PolicyResult:
    product: str
    policy: str
    status: str
    detail: str


@dataclass
class ComplianceReport:
    results: list[PolicyResult] = field(default_factory=list)

    def add(self, product: str, policy: str, passed: bool | None, detail: str) -> None:
        status = "n/a" if passed is None else "pass" if passed else "FAIL"
        self.results.append(PolicyResult(product, policy, status, detail))

    @property
    def violations(self) -> list[PolicyResult]:
        return [r for r in self.results if r.status == "FAIL"]

    def matrix(self) -> list[dict[str, str]]:
        """One row per policy, one column per product (by table name): ✓ pass, ✗ violation, – n/a."""
        marks = {"pass": "✓", "FAIL": "✗", "n/a": "–"}
        return [
            {
                "policy": policy,
                **{r.product.split(".")[-1]: marks[r.status] for r in self.results if r.policy == policy},
            }
            for policy in dict.fromkeys(r.policy for r in self.results)
        ]


def evaluate_governance(run: PatternRun, platform: MeshPlatform, world: EcommerceWorld) -> ComplianceReport:
    """Federated computational governance: every global policy, evaluated live on every product."""
    spark, catalog = platform.spark, platform.catalog
    report = ComplianceReport()
    shared = {r["product"] for r in catalog.query("SELECT product FROM shares")}
    for entry in catalog.query("SELECT product FROM products ORDER BY product"):
        product = entry["product"]
        contract = registered(catalog, product)
        name = TableName.parse(product)
        problems = schema_problems(contract.document) + platform_problems(contract)
        table_version = spark.sql(f"SHOW TBLPROPERTIES {name.local} ('mesh.contract.version')").first()["value"]
        report.add(
            product,
            "contract-valid",
            not problems and table_version == contract.version,
            "; ".join(problems) or f"valid; table and catalog both at {contract.version}",
        )
        live = spark.table(name.local)
        expected = [(c.name, c.physical_type, not c.required) for c in contract.columns]
        actual = [(f.name, f.dataType.simpleString(), f.nullable) for f in live.schema.fields]
        report.add(product, "schema-matches-contract", actual == expected, f"{len(actual)} columns checked")
        view = f"live_{name.table}"
        live.createOrReplaceTempView(view)
        profile = profile_candidate(spark, live, contract, view)
        failed = [r.id for r in contract.quality_rules if not r.passes(profile.rule_values[r.id])]
        report.add(
            product, "quality-rules-pass", not failed, ", ".join(failed) or f"{len(contract.quality_rules)} rules pass"
        )
        unclassified = [k for k in profile.pii_findings if not contract.column(k).protected]
        report.add(
            product, "pii-classified", not unclassified, ", ".join(unclassified) or "every PII column restricted"
        )
        grants = catalog.query("SELECT consumer, view FROM grants WHERE product = ?", (product,))
        if contract.protected_columns:
            leaks = {g["consumer"]: count_unmasked_values(spark, contract, TableName.parse(g["view"])) for g in grants}
            report.add(
                product,
                "pii-masked-for-non-owners",
                not any(leaks.values()),
                ", ".join(f"{k}: {v} unmasked values" for k, v in leaks.items()) or "no consumer granted yet",
            )
        else:
            report.add(product, "pii-masked-for-non-owners", None, "no restricted columns")
        latency = contract.latency
        if latency is None:
            raise ExpertError(f"{product} has no freshness SLA", "the platform rules require a latency SLA")
        age = MESH_CLOCK - profile.newest if profile.newest else None
        report.add(
            product,
            "freshness-sla",
            age is not None and age <= latency.limit,
            f"newest {latency.column} is {age.total_seconds() / 86400:.1f} days old (SLA {latency.text})"
            if age
            else "no data",
        )
        observed = {
            r["upstream"] for r in catalog.query("SELECT upstream FROM lineage WHERE downstream = ?", (product,))
        }
        declared = contract.declared_sources
        report.add(
            product,
            "lineage-declared",
            None if not (observed or declared) else observed == declared,
            f"observed {sorted(observed)} vs declared {sorted(declared)}"
            if observed or declared
            else "a source-aligned product",
        )
        report.add(
            product,
            "shares-expose-no-pii",
            None if product not in shared else not contract.protected_columns,
            "not shared"
            if product not in shared
            else ", ".join(c.name for c in contract.protected_columns) or "no restricted columns shared",
        )
        failed = [v.policy for v in report.violations if v.product == product]
        catalog.set_compliance(product, "violations: " + ", ".join(failed) if failed else "compliant")
    run.table(report.matrix(), title="Compliance report (✓ pass, ✗ violation, – not applicable)")
    for violation in report.violations:
        run.say(f"✗ {violation.product} · {violation.policy}: {violation.detail}")
    write_report(run.workdir, report)
    last_order = publishable_orders(world)["order_ts"].max()
    newest = {
        "orders.products.orders": last_order,
        "customers.products.customer_profile": world.customers["updated_at"].max(),
        "marketing.products.customer_value": last_order,
    }
    independent = {}
    for product, ts in newest.items():
        limit = registered(catalog, product).latency
        age = MESH_CLOCK - pd.Timestamp(ts).tz_convert(None).to_pydatetime()
        independent[product] = limit is not None and age <= limit.limit
    reported = {r.product: r.status == "pass" for r in report.results if r.policy == "freshness-sla"}
    run.check(
        "the freshness verdicts agree with an independent computation from the generator",
        reported == independent,
        ", ".join(f"{p.split('.')[-1]}: {'met' if ok else 'missed'}" for p, ok in independent.items()),
    )
    products = catalog.query("SELECT product FROM products")
    run.check(
        "every policy was evaluated on every registered product",
        len(report.results) == len(POLICIES) * len(products),
        f"{len(POLICIES)} policies × {len(products)} products = {len(report.results)} evaluations",
    )
    return report


def write_report(workdir: Path, report: ComplianceReport) -> None:
    """The compliance report as JSON (for machines) and Markdown (for the owners it notifies)."""
    (workdir / "compliance_report.json").write_text(json.dumps([r.__dict__ for r in report.results], indent=2))
    matrix = report.matrix()
    header = list(matrix[0]) if matrix else ["policy"]
    lines = ["# Compliance report", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row.values()) + " |" for row in matrix]
    lines += ["", "## Violations", ""] + [f"- **{v.product}** · {v.policy}: {v.detail}" for v in report.violations]
    (workdir / "compliance_report.md").write_text("\n".join(lines) + "\n")


def breaking_change(run: PatternRun, platform: MeshPlatform, world: EcommerceWorld, v2: DataContract) -> None:
    """The orders team renames `amount` and narrows `quantity`: blocked as 1.1.0, allowed as 2.0.0."""
    spark, catalog = platform.spark, platform.catalog
    product = v2.product
    location = platform.location(product)
    frame = publishable_orders(world).rename(columns={"amount": "gross_amount"})
    candidate = cast_to_contract(frame, v2, spark)
    before_version = delta_version(location)
    minor = v2.with_changes("orders 1.1.0 (same change, minor bump)", version="1.1.0")
    blocked = platform.publish(minor, candidate)
    show_gates(run, "orders 1.1.0 with the rename", blocked)
    run.table(
        [{"column": c.column, "change": c.kind, "detail": c.detail, "breaking": c.breaking} for c in blocked.changes],
        title="Schema changes against the published 1.0.0",
    )
    registered = catalog.product(product) or {}
    run.check(
        "a breaking change released as 1.1.0 is blocked and nothing changes",
        not blocked.accepted and registered.get("version") == "1.0.0" and delta_version(location) == before_version,
        f"catalog still at {registered.get('version')}, table still at Delta version {before_version}",
    )
    allowed = platform.publish(v2, candidate)
    show_gates(run, "orders 2.0.0 with the rename", allowed)
    v1 = spark.sql(f"SELECT * FROM delta.`{location}` VERSION AS OF {before_version}")
    v1_rows = v1.count()
    registered = catalog.product(product) or {}
    versions = [
        r["version"]
        for r in catalog.query("SELECT version FROM product_versions WHERE product = ? ORDER BY version", (product,))
    ]
    run.check(
        "the same change released as 2.0.0 is published, and 1.0.0 stays readable by time travel",
        allowed.outcome == "published"
        and registered.get("version") == "2.0.0"
        and versions == ["1.0.0", "2.0.0"]
        and "amount" in v1.columns
        and v1_rows == allowed.rows,
        f"versions {versions}; Delta version {before_version} still has `amount` ({v1_rows:,} rows)",
    )
    broken = {c.column for c in allowed.changes if c.breaking}
    impact = []
    for row in catalog.downstream_of(product):
        used = set(row["columns"].split(",")) if row["depth"] == 1 else set()
        impact.append(
            {
                "downstream": row["product"],
                "owner": row["owner"],
                "depth": row["depth"],
                "reads": row["columns"],
                "broken columns": ", ".join(sorted(used & broken)) or "-",
                "action": "must migrate before its next build" if used & broken else "unaffected",
            }
        )
    run.table(impact, title=f"Impact of {product} 2.0.0 (recursive lineage query)")
    run.check(
        "impact analysis names the consumer that reads a broken column",
        [r["downstream"] for r in impact if r["broken columns"] != "-"] == ["marketing.products.customer_value"],
        "marketing.products.customer_value reads amount",
    )
    catalog_before = catalog.query("SELECT product, version, delta_version, published_at FROM product_versions")
    again = platform.publish(v2, candidate)
    catalog_after = catalog.query("SELECT product, version, delta_version, published_at FROM product_versions")
    run.check(
        "re-publishing the same version and data changes nothing",
        again.outcome == "unchanged"
        and delta_version(location) == allowed.delta_version
        and catalog_after == catalog_before,
        f"outcome {again.outcome}; Delta version still {delta_version(location)}; "
        f"catalog still {len(catalog_after)} product versions",
    )


def show_lineage(run: PatternRun, catalog: ProductCatalog) -> None:
    """Lineage as a tree in the terminal and as a Mermaid graph in the workdir."""
    products = {r["product"]: r for r in catalog.query("SELECT product, version FROM products")}
    edges = catalog.query("SELECT * FROM lineage ORDER BY upstream")
    grants = catalog.query("SELECT * FROM grants ORDER BY product")
    shares = catalog.query("SELECT * FROM shares ORDER BY product, platform")
    roots = sorted(p for p in products if not any(e["downstream"] == p for e in edges))

    drawn_products: set[str] = set()

    def children(product: str, depth: int) -> list[str]:
        if product in drawn_products:
            return [f"{'    ' * depth}(its consumers are drawn above)"]
        drawn_products.add(product)
        lines = []
        for grant in (g for g in grants if g["product"] == product):
            lines.append(f"{'    ' * depth}└─▶ view {grant['view']} (granted to {grant['consumer']})")
            for edge in (e for e in edges if e["via"] == grant["view"]):
                down = products[edge["downstream"]]
                lines.append(
                    f"{'    ' * (depth + 1)}└─▶ {edge['downstream']} {down['version']}"
                    f" (built from {edge['upstream_version']} @ Delta v{edge['upstream_delta_version']}: {edge['columns']})"
                )
                lines += children(edge["downstream"], depth + 2)
        for share in (s for s in shares if s["product"] == product):
            lines.append(f"{'    ' * depth}└─▶ {share['platform']} share {share['share']} → {share['recipient']}")
        return lines

    for root in roots:
        run.say(f"{root} {products[root]['version']}")
        for line in children(root, 0):
            run.say(line)
    mermaid = ["flowchart LR"]
    ids = {name: f"n{i}" for i, name in enumerate(sorted({*products, *(g["view"] for g in grants)}))}
    for name, node in ids.items():
        label = f"{name} {products[name]['version']}" if name in products else f"view {name}"
        mermaid.append(f'  {node}["{label}"]')
    mermaid += [f"  {ids[g['product']]} --> {ids[g['view']]}" for g in grants]
    mermaid += [f"  {ids[e['via']]} -->|{e['columns']}| {ids[e['downstream']]}" for e in edges]
    for i, share in enumerate(shares):
        mermaid.append(f'  s{i}(["{share["platform"]}: {share["share"]} → {share["recipient"]}"])')
        mermaid.append(f"  {ids[share['product']]} --> s{i}")
    path = run.workdir / "lineage.mmd"
    path.write_text("\n".join(mermaid) + "\n")
    drawn = sum(1 for line in mermaid if "-->" in line)
    run.check(
        "the lineage graph draws every grant, read and share the platform recorded",
        drawn == len(grants) + len(edges) + len(shares),
        f"{len(grants)} grants + {len(edges)} reads + {len(shares)} shares = {drawn} edges in {path.name}",
    )


def body(run: PatternRun) -> None:
    world = EcommerceWorld(run.rows, seed=run.seed)

    run.step("Domains write contracts: ODCS v3.2.0 YAML, validated by the standard's own JSON Schema")
    contracts = load_contracts(run)
    orders, customers, marketing = (contracts[p.name] for p in (ORDERS_V1, CUSTOMERS, MARKETING))

    run.step("Namespaces: one Unity Catalog catalog per domain, mapped onto the local session catalog")
    prepare_namespaces(run, contracts)
    catalog = ProductCatalog(run.workdir / "platform" / "catalog.sqlite")
    platform = MeshPlatform(run, catalog)

    run.step("Orders domain publishes: the self-serve publish gate rejects its raw feed, accepts the clean one")
    defects = publish_orders(run, platform, world, orders)

    run.step("Customers domain publishes: personal data must be classified before it can leave the domain")
    publish_customers(run, platform, world, customers)

    run.step("Discover: the catalog is searchable by domain, tag, owner and free text")
    search_catalog(run, catalog, [orders, customers])

    run.step("Request access: marketing is granted views that anonymise what it may not see")
    grant_marketing_access(run, platform, world)

    run.step("Marketing builds its product from published products only; lineage is recorded")
    publish_marketing(run, platform, world, marketing)

    run.step("Share outside the company: Delta Sharing and a Snowflake secure share, read-only")
    share_product(run, platform, marketing)

    run.step("Federated computational governance: every policy on every product")
    report = evaluate_governance(run, platform, world)

    run.step("A breaking change: blocked as a minor release, allowed as a major one, impact found")
    breaking_change(run, platform, world, contracts[ORDERS_V2.name])

    run.step("Lineage graph")
    show_lineage(run, catalog)

    run.figure(
        "data products published",
        len(catalog.query("SELECT product FROM products")),
        key=True,
        how="registered in the catalog",
    )
    run.figure(
        "defective order rows caught by the quality gate",
        defects,
        "rows",
        how="null keys + redelivered duplicates, equal to the generator's counts",
    )
    run.figure("policy evaluations", len(report.results), key=True, how=f"{len(POLICIES)} global policies × products")
    run.figure("policy violations", len(report.violations), key=True, how="see compliance_report.md in the workdir")
    run.figure("compliance", f"{sum(r.status != 'FAIL' for r in report.results)}/{len(report.results)} passed or n/a")


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=10_000)


if __name__ == "__main__":
    raise SystemExit(main())
