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
  downstream consumers it breaks; compare the verdict with `datacontract breaking` (datacontract-cli)
- Share a product with another organisation (Delta Sharing, Snowflake secure share) read-only

Run it:
    python expert/integration/04_data_mesh.py [--rows N]
    expert run integration/04
Locally: Spark + Delta Lake (each Unity Catalog `catalog.schema` is the database `catalog__schema`
of Spark's one session catalog), a SQLite product catalog, fakesnow for the Snowflake share. With
Snowflake credentials in .env the product, its secure view and the share are created on the
account; Unity Catalog grants, column masks and Delta Sharing statements are shown for a workspace
(cloud-plan.md). The datacontract-cli comparison runs when `make tools` installed the CLI
(scripts/install-datacontract.sh); without it the pattern prints the command.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from expert import PROJECT_ROOT
from expert.lakehouse.delta_ops import delta_table
from expert.mesh.catalog import ProductCatalog, catalog_tags, registered, search_text
from expert.mesh.compliance import ComplianceReport, write_report
from expert.mesh.lineage import lineage_mermaid, lineage_tree
from expert.mesh.names import SHARED_SCHEMA, TableName, committed_rows, delta_version
from expert.mesh.platform import (
    AccessDeniedError,
    DomainReader,
    MeshPlatform,
    PublishResult,
    cast_to_contract,
    unmasked_values,
)
from expert.mesh.profiling import profile_candidate
from expert.mesh.sharing import attempt_writes, open_share, quiet_logger, write_server_config
from expert.mesh.truth import expected_customer_value, newest_values, publishable_orders, same_customer_value
from expert.runtime import datacontract_cli
from expert.runtime.contracts import ContractError, DataContract, platform_problems, schema_problems
from expert.runtime.data import DAYS, EPOCH, EcommerceWorld
from expert.runtime.errors import ExpertError
from expert.runtime.pattern import PatternRun, run_pattern
from expert.runtime.snowflake_ddl import AddShareAccounts, GrantTarget, GrantToShare, Share, SharePrivilege

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

CONTRACTS = Path(__file__).resolve().parent / "contracts"
ORDERS_V1 = CONTRACTS / "orders" / "orders.odcs.yaml"
ORDERS_V2 = CONTRACTS / "orders" / "orders-v2.odcs.yaml"
CUSTOMERS = CONTRACTS / "customers" / "customer_profile.odcs.yaml"
MARKETING = CONTRACTS / "marketing" / "customer_value.odcs.yaml"

MESH_CLOCK = (EPOCH + timedelta(days=DAYS)).replace(tzinfo=None)
"""The generated world's clock stops after its 30 days: freshness is measured against that
instant (UTC), so the compliance report is the same on every run."""
HIGH_VALUE, MEDIUM_VALUE = 500, 100
"""Revenue thresholds of the marketing value tiers (the contract documents them)."""
DELTA_SHARE, RECIPIENT = "marketing_customer_value", "adpartner"
SNOWFLAKE_SHARE, PARTNER_ACCOUNT = "MARKETING_CUSTOMER_VALUE", "PARTNERORG.ADPARTNER"

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


# --- Domain pipelines --------------------------------------------------------------------------


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
        {"product": c.product, "version": c.version, "owner": c.owner, "columns": len(c.columns),
         "restricted": len(c.protected_columns), "rules": len(c.quality_rules),
         "freshness": f"{c.latency.column} {c.latency.text}" if c.latency else "-"}
        for c in contracts.values()
    ]  # fmt: skip
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
    mapping = [{"Unity Catalog": f"{n}.{s}", "local database": f"{n}__{s}", "storage": f"lake/{n}/{s}/"}
               for n in names for s in ("products", SHARED_SCHEMA)]  # fmt: skip
    run.table(mapping, title="catalog.schema → spark_catalog database")
    run.stand_in("Unity Catalog catalogs and schemas", "`catalog__schema` databases in Spark's one session catalog")
    statements = [
        f"CREATE CATALOG IF NOT EXISTS {n};\nCREATE SCHEMA IF NOT EXISTS {n}.products;\n"
        f"CREATE SCHEMA IF NOT EXISTS {n}.{SHARED_SCHEMA};\n"
        f"GRANT USE CATALOG, USE SCHEMA, CREATE TABLE, MODIFY, SELECT ON CATALOG {n} TO `{n}-domain`;"
        for n in names
    ]
    run.cloud_only_step(
        "unity catalog",
        "\n".join(statements),
        "catalogs and grants need a Unity Catalog metastore; the local session catalog has one catalog and no grants",
        kind="catalogs, schemas, grants",
        language="sql",
        purpose="one catalog per domain, owned by the domain's group",
    )


def clean_orders(raw: DataFrame) -> DataFrame:
    """The orders domain's fix for its feed: drop rows without a key, keep one row per order."""
    return raw.where("order_id IS NOT NULL").dropDuplicates(["order_id"])


def publish_orders(run: PatternRun, platform: MeshPlatform, world: EcommerceWorld, contract: DataContract) -> int:
    """Orders domain: its raw feed fails the quality gate; the cleaned product passes and is published."""
    raw_frame, dirt = world.deliver("orders", "order_id")
    raw = cast_to_contract(raw_frame, contract, run.spark)
    rejected = platform.publish(contract, raw)
    run.table(rejected.gate_rows(), title=f"orders 1.0.0 from the raw feed: {rejected.outcome.upper()}")
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
    run.table(result.gate_rows(), title=f"orders 1.0.0 after the domain's cleaning: {result.outcome.upper()}")
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
    run.table(
        rejected.gate_rows(), title=f"customer_profile draft, phone classified internal: {rejected.outcome.upper()}"
    )
    pii_gate = next(g for g in rejected.gates if g.gate == "PII classified")
    run.check(
        "the PII gate refuses a product with an unclassified personal-data column",
        not rejected.accepted and pii_gate.passed is False and "phone" in pii_gate.detail,
        pii_gate.detail,
    )
    result = platform.publish(contract, candidate)
    run.table(result.gate_rows(), title=f"customer_profile 1.0.0: {result.outcome.upper()}")
    run.check(
        "the customer profile is published with one row per customer",
        result.outcome == "published" and result.rows == len(world.customers),
        f"{result.rows:,} rows = {len(world.customers):,} customers",
    )


def search_catalog(run: PatternRun, catalog: ProductCatalog, contracts: Sequence[DataContract]) -> None:
    """Discover products the way a consumer does: by domain, tag, owner and free text."""
    run.stand_in("Unity Catalog search (or a data catalog)", "a SQLite catalog with an FTS5 full-text index")
    owner = "carla.customers@example.com"
    expected = {
        ("domain", "customers"): {c.product for c in contracts if c.domain == "customers"},
        ("tag", "pii"): {c.product for c in contracts if "pii" in catalog_tags(c)},
        ("tag", "finance"): {c.product for c in contracts if "finance" in c.tags},
        ("owner", owner): {c.product for c in contracts if c.owner == owner},
        ("text", "email"): {c.product for c in contracts if "email" in re.findall(r"\w+", search_text(c).lower())},
    }
    found = {search: catalog.find(*search) for search in expected}
    rows = [
        {"search": f"{by} = {value}", "found": ", ".join(sorted(found[by, value])) or "-",
         "as the contracts say": found[by, value] == want}
        for (by, value), want in expected.items()
    ]  # fmt: skip
    run.table(rows, title="Catalog searches (SQLite: products, tags, columns, FTS5 full-text index)")
    run.check(
        "every catalog search returns exactly the products whose contracts match",
        found == expected,
        f"{len(expected)} searches over {len(contracts)} registered products",
    )


def grant_marketing_access(run: PatternRun, platform: MeshPlatform, world: EcommerceWorld) -> None:
    """Marketing asks for orders and customers; the platform grants views that mask what it may not see."""
    spark = platform.spark
    run.stand_in("Unity Catalog grants and column masks", "masked views served only through the platform's reader")
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
    unmasked = unmasked_values(spark, contract, customers_view)
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
        kind="column mask + grants",
        language="sql",
        purpose="mask personal data for everyone outside the owning domain, grant marketing its views",
    )


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


def publish_marketing(run: PatternRun, platform: MeshPlatform, world: EcommerceWorld, contract: DataContract) -> None:
    """Marketing builds from granted products only; the platform records what it read as lineage."""
    reader = platform.reader("marketing")
    candidate = build_customer_value(reader).cache()
    result = platform.publish(contract, candidate, reads=reader.reads)
    run.table(result.gate_rows(), title=f"customer_value 1.0.0: {result.outcome.upper()}")
    actual = candidate.toPandas()
    candidate.unpersist()
    expected = expected_customer_value(world, MESH_CLOCK, HIGH_VALUE, MEDIUM_VALUE)
    same = same_customer_value(actual, expected)
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
    config_path = run.workdir / "sharing" / "delta-sharing-server.yaml"
    write_server_config(config_path, DELTA_SHARE, name.schema, name.table, location)
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
        kind="share + recipient",
        language="sql",
        purpose="share the product read-only with the ad partner's organisation",
    )
    run.stand_in("a Delta Sharing recipient", "a read-only view resolved from the sharing server's config, pinned")
    version_before = delta_version(location)
    rows_before = int((platform.catalog.product(contract.product) or {}).get("rows", -1))
    recipient = open_share(spark, config_path, f"{DELTA_SHARE}.{name.schema}.{name.table}", RECIPIENT)
    rejected = attempt_writes(spark, recipient)
    try:
        open_share(spark, config_path, f"{DELTA_SHARE}.products.customer_profile", RECIPIENT)
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


def share_to_snowflake(run: PatternRun, platform: MeshPlatform, contract: DataContract) -> None:
    """Load the product into Snowflake behind a secure view and share that view with a partner account."""
    frame = platform.spark.table(TableName.parse(contract.product).local).toPandas()
    frame.columns = [c.upper() for c in frame.columns]
    frame["REVENUE"] = frame["REVENUE"].astype(float)
    with run.snowflake(database="MESH", schema="MARKETING") as sf:
        if sf.is_local:
            run.stand_in("Snowflake", "fakesnow (DuckDB) under the real snowflake-connector-python")
        loaded = sf.write_pandas(frame, "CUSTOMER_VALUE", overwrite=True, use_logical_type=True)
        with quiet_logger("sqlglot", logging.ERROR):
            sf.execute(
                "CREATE OR REPLACE SECURE VIEW CUSTOMER_VALUE_SHARED AS SELECT CUSTOMER_ID, COUNTRY, SEGMENT, "
                "AGE_BAND, ORDERS_COUNT, REVENUE, LAST_ORDER_TS, VALUE_TIER FROM CUSTOMER_VALUE"
            )
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
        report.add(product, "contract-valid", not problems and table_version == contract.version,
                   "; ".join(problems) or f"valid; table and catalog both at {contract.version}")  # fmt: skip
        live = spark.table(name.local)
        expected = [(c.name, c.physical_type, not c.required) for c in contract.columns]
        actual = [(f.name, f.dataType.simpleString(), f.nullable) for f in live.schema.fields]
        report.add(product, "schema-matches-contract", actual == expected, f"{len(actual)} columns checked")
        live.createOrReplaceTempView(f"live_{name.table}")
        profile = profile_candidate(spark, live, contract, f"live_{name.table}")
        failed = [r.id for r in contract.quality_rules if not r.passes(profile.rule_values[r.id])]
        report.add(product, "quality-rules-pass", not failed,
                   ", ".join(failed) or f"{len(contract.quality_rules)} rules pass")  # fmt: skip
        unclassified = [k for k in profile.pii_findings if not contract.column(k).protected]
        report.add(
            product, "pii-classified", not unclassified, ", ".join(unclassified) or "every PII column restricted"
        )
        grants = catalog.query("SELECT consumer, view FROM grants WHERE product = ?", (product,))
        leaks = {g["consumer"]: unmasked_values(spark, contract, TableName.parse(g["view"])) for g in grants}
        report.add(product, "pii-masked-for-non-owners", not any(leaks.values()) if contract.protected_columns else None,
                   (", ".join(f"{k}: {v} unmasked values" for k, v in leaks.items()) or "no consumer granted yet")
                   if contract.protected_columns else "no restricted columns")  # fmt: skip
        latency = contract.latency
        if latency is None:
            raise ExpertError(f"{product} has no freshness SLA", "the platform rules require a latency SLA")
        age = MESH_CLOCK - profile.newest if profile.newest else None
        report.add(product, "freshness-sla", age is not None and age <= latency.limit,
                   f"newest {latency.column} is {age.total_seconds() / 86400:.1f} days old (SLA {latency.text})"
                   if age else "no data")  # fmt: skip
        lineage = catalog.query("SELECT upstream FROM lineage WHERE downstream = ?", (product,))
        observed, declared = {r["upstream"] for r in lineage}, contract.declared_sources
        report.add(product, "lineage-declared", observed == declared if observed or declared else None,
                   f"observed {sorted(observed)} vs declared {sorted(declared)}" if observed or declared
                   else "a source-aligned product")  # fmt: skip
        exposed = ", ".join(c.name for c in contract.protected_columns) or "no restricted columns shared"
        report.add(product, "shares-expose-no-pii", not contract.protected_columns if product in shared else None,
                   exposed if product in shared else "not shared")  # fmt: skip
        failed = [v.policy for v in report.violations if v.product == product]
        catalog.set_compliance(product, "violations: " + ", ".join(failed) if failed else "compliant")
    run.table(report.matrix(), title="Compliance report (✓ pass, ✗ violation, – not applicable)")
    for violation in report.violations:
        run.say(f"✗ {violation.product} · {violation.policy}: {violation.detail}")
    write_report(run.workdir, report)
    independent = {}
    for product, ts in newest_values(world).items():
        limit = registered(catalog, product).latency
        independent[product] = limit is not None and MESH_CLOCK - ts <= limit.limit
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


def compare_with_datacontract_cli(run: PatternRun, gate: PublishResult) -> None:
    """The same two contracts through `datacontract breaking`, the ODCS tooling's check, next to the mesh's gate."""
    command = f"datacontract breaking {ORDERS_V1.relative_to(PROJECT_ROOT)} {ORDERS_V2.relative_to(PROJECT_ROOT)}"
    cli = datacontract_cli.find_cli()
    if cli is None:
        run.note(
            f"datacontract-cli is not installed ({datacontract_cli.INSTALL} installs it); the same check: {command}"
        )
        return
    result, changes = datacontract_cli.breaking(cli, ORDERS_V1, ORDERS_V2)
    tool = {c.field.rsplit(".", 1)[-1] for c in changes if c.severity == "ERROR"}
    mesh = {c.column for c in gate.changes if c.breaking}
    run.table(
        [{"check": "the mesh's version gate", "verdict": "breaking" if mesh else "compatible", "columns": sorted(mesh)},
         {"check": f"$ {command} (exit {result.returncode})", "verdict": "breaking" if tool else "compatible",
          "columns": sorted(tool)}],
        title="Two verdicts on orders 1.0.0 → 2.0.0",
    )  # fmt: skip
    run.check(
        "datacontract-cli and the mesh's gate agree: the change is breaking, in the same columns",
        not result.passed and tool == mesh != set(),
        f"both flag {', '.join(sorted(mesh))}; datacontract-cli lists the rename as a removal plus an addition",
    )


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
    run.table(blocked.gate_rows(), title=f"orders 1.1.0 with the rename: {blocked.outcome.upper()}")
    run.table(
        [{"column": c.column, "change": c.kind, "detail": c.detail, "breaking": c.breaking} for c in blocked.changes],
        title="Schema changes against the published 1.0.0",
    )
    compare_with_datacontract_cli(run, blocked)
    registered = catalog.product(product) or {}
    run.check(
        "a breaking change released as 1.1.0 is blocked and nothing changes",
        not blocked.accepted and registered.get("version") == "1.0.0" and delta_version(location) == before_version,
        f"catalog still at {registered.get('version')}, table still at Delta version {before_version}",
    )
    allowed = platform.publish(v2, candidate)
    run.table(allowed.gate_rows(), title=f"orders 2.0.0 with the rename: {allowed.outcome.upper()}")
    v1 = spark.sql(f"SELECT * FROM {delta_table(location)} VERSION AS OF {before_version}")
    v1_rows = v1.count()
    registered = catalog.product(product) or {}
    versions = catalog.versions(product)
    run.check(
        "the same change released as 2.0.0 is published, and 1.0.0 stays readable by time travel",
        allowed.outcome == "published"
        and registered.get("version") == "2.0.0"
        and versions == ["1.0.0", "2.0.0"]
        and "amount" in v1.columns
        and v1_rows == allowed.rows,
        f"versions {versions}; Delta version {before_version} still has `amount` ({v1_rows:,} rows)",
    )
    impact = catalog.impact(product, broken={c.column for c in allowed.changes if c.breaking})
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
    for line in lineage_tree(catalog):
        run.say(line)
    mermaid, recorded = lineage_mermaid(catalog)
    path = run.workdir / "lineage.mmd"
    path.write_text(mermaid)
    drawn = mermaid.count("-->")
    run.check(
        "the lineage graph draws every grant, read and share the platform recorded",
        drawn == sum(recorded.values()),
        f"{recorded['grants']} grants + {recorded['reads']} reads + {recorded['shares']} shares = {drawn} edges in {path.name}",
    )


def body(run: PatternRun) -> None:
    world = EcommerceWorld(run.rows, seed=run.seed)

    run.step(
        "Domains write contracts: ODCS v3.2.0 YAML, checked by the standard", why="the contract is the product's API"
    )
    contracts = load_contracts(run)
    orders, customers, marketing = (contracts[p.name] for p in (ORDERS_V1, CUSTOMERS, MARKETING))

    run.step("Namespaces: one Unity Catalog catalog per domain", why="each domain owns its namespace and its grants")
    prepare_namespaces(run, contracts)
    catalog = ProductCatalog(run.workdir / "platform" / "catalog.sqlite")
    platform = MeshPlatform(run.spark, catalog, run.workdir / "lake")

    run.step("Orders domain publishes through the self-serve gate", why="nothing reaches consumers unchecked")
    defects = publish_orders(run, platform, world, orders)

    run.step("Customers domain publishes personal data", why="PII must be classified before it leaves the domain")
    publish_customers(run, platform, world, customers)

    run.step("Discover: search the catalog by domain, tag, owner, text", why="consumers find products themselves")
    search_catalog(run, catalog, [orders, customers])

    run.step("Request access: marketing is granted masked views", why="consumers see only what they may see")
    grant_marketing_access(run, platform, world)

    run.step(
        "Marketing builds its product from published products", why="lineage recorded, checked against the contract"
    )
    publish_marketing(run, platform, world, marketing)

    run.step("Share outside the company, read-only", why="Delta Sharing and a Snowflake secure share, never a copy")
    share_product(run, platform, marketing)

    run.step("Federated computational governance", why="every global policy, evaluated on every product, as code")
    report = evaluate_governance(run, platform, world)

    run.step("A breaking change: blocked as a minor release, allowed as a major", why="consumers never break silently")
    breaking_change(run, platform, world, contracts[ORDERS_V2.name])

    run.step("Lineage graph", why="what was built from what, as the platform observed it")
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
