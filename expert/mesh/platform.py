"""The self-serve platform: one publish path with its gates, grants as masked views, reads with lineage.

Why one path: a domain team publishes by calling `MeshPlatform.publish(contract, dataframe)`. The
contract gates run first (the standard's schema, the platform's rules, an owner, the semantic-
version gate), then the data gates on one profile of the candidate (schema, quality rules,
required columns, personal data classified); only then is the table written, with the contract as
its DDL and properties, and registered. A consumer domain reads another's product only through
`DomainReader`, which serves its granted (masked) view and records every read as lineage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expert.mesh.catalog import ProductCatalog
from expert.mesh.names import TableName, consumer_view, delta_version, sql_literal
from expert.mesh.profiling import Profile, profile_candidate
from expert.runtime.contracts import DataContract, platform_problems, schema_problems, version_gate

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

MASKS = {
    "hash": "sha2(lower({c}), 256)",
    "redact": "CAST(NULL AS {t})",
    "last4": "concat('***', right({c}, 4))",
    "year": "make_date(year({c}), 1, 1)",
}
"""Spark SQL per anonymization strategy: what a non-owner sees instead of a protected value."""


@dataclass(frozen=True)
class Gate:
    gate: str
    passed: bool | None
    detail: str


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

    def gate_rows(self) -> list[dict[str, str]]:
        """One row per gate: pass, FAIL, or skipped (a later gate when an earlier one already rejected)."""
        return [
            {
                "gate": g.gate,
                "result": "pass" if g.passed else "skipped" if g.passed is None else "FAIL",
                "detail": g.detail,
            }
            for g in self.gates
        ]


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

    def __init__(self, spark: SparkSession, catalog: ProductCatalog, lake: Path) -> None:
        self.spark = spark
        self.catalog = catalog
        self.lake = lake

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


def schema_diff_text(expected: Sequence[tuple[str, str]], actual: Sequence[tuple[str, str]]) -> str:
    if expected == actual:
        return f"{len(expected)} columns, names and types as contracted"
    missing = [f"{n} {t}" for n, t in expected if (n, t) not in actual]
    extra = [f"{n} {t}" for n, t in actual if (n, t) not in expected]
    return f"expected but missing: {missing or 'none'}; unexpected: {extra or 'none'}"


def unmasked_values(spark: SparkSession, contract: DataContract, view: TableName) -> int:
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


def cast_to_contract(frame: pd.DataFrame, contract: DataContract, spark: SparkSession) -> DataFrame:
    """A domain's last transform: select and cast its data to exactly the contracted columns."""
    from pyspark.sql import functions as F

    df = spark.createDataFrame(frame[[c.name for c in contract.columns if c.name in frame.columns]])
    return df.select(*[F.col(c.name).cast(c.physical_type).alias(c.name) for c in contract.columns])
