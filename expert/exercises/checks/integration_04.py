"""Checks for integration/04 (data mesh): products that keep their contracts, governance that holds, safe releases."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from expert import PROJECT_ROOT
from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.runtime.contracts import DataContract

CONTRACTS = PROJECT_ROOT / "expert" / "integration" / "contracts"
CONTRACT_FILES = (
    CONTRACTS / "orders" / "orders.odcs.yaml",
    CONTRACTS / "customers" / "customer_profile.odcs.yaml",
    CONTRACTS / "marketing" / "customer_value.odcs.yaml",
)

# --- integration/04.3: the release gate --------------------------------------------------------

PATCH, MINOR, MAJOR = 1, 2, 3
STEP_NAMES = {PATCH: "patch", MINOR: "minor", MAJOR: "major"}
NARROWER = {"bigint": "int", "timestamp": "date"}
WIDER = {"date": "timestamp", "bigint": "decimal(22,2)"}
Document = dict[str, Any]


@dataclass(frozen=True)
class Edit:
    """One edit of a contract, what it does to consumers, and the smallest release that may carry it."""

    what: str
    needs: int
    apply: Callable[[Document], None]


def properties(document: Document) -> list[dict[str, Any]]:
    return document["schema"][0]["properties"]


def load_document(path: Path) -> Document:
    """A shipped contract as a fresh document (parsed once per process, with libyaml when it is there)."""
    return copy.deepcopy(_parsed(path))


@cache
def _parsed(path: Path) -> Document:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def edits(document: Document, rng: np.random.Generator) -> dict[str, Edit]:
    """Every kind of edit the gate must judge, each on a column the seed picks."""
    columns = [p for p in properties(document) if not p.get("primaryKey")]

    def pick(predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        fitting = [p for p in columns if predicate(p)]
        return fitting[int(rng.integers(0, len(fitting)))] if fitting else None

    def edit_column(column: str, /, **changes: Any) -> Callable[[Document], None]:
        def apply(doc: Document) -> None:
            target = next(p for p in properties(doc) if p["name"] == column)
            target.update(changes)

        return apply

    out: dict[str, Edit] = {}
    if (col := pick(lambda p: True)) is not None:
        name = col["name"]
        out["removed"] = Edit(f"{name} removed", MAJOR,
                              lambda doc: properties(doc).remove(next(p for p in properties(doc) if p["name"] == name)))  # fmt: skip
    if (col := pick(lambda p: True)) is not None:
        out["renamed"] = Edit(
            f"{col['name']} renamed to {col['name']}_v2", MAJOR, edit_column(col["name"], name=f"{col['name']}_v2")
        )
    if (col := pick(lambda p: narrower(p["physicalType"]) is not None)) is not None:
        new = narrower(col["physicalType"])
        out["narrowed"] = Edit(f"{col['name']} {col['physicalType']} → {new}", MAJOR,
                               edit_column(col["name"], physicalType=new, logicalType=logical(new)))  # fmt: skip
    if (col := pick(lambda p: p["physicalType"] in ("string", "bigint"))) is not None:
        new = "bigint" if col["physicalType"] == "string" else "string"
        out["type changed"] = Edit(f"{col['name']} {col['physicalType']} → {new}", MAJOR,
                                   edit_column(col["name"], physicalType=new, logicalType=logical(new)))  # fmt: skip
    if (col := pick(lambda p: bool(p.get("required")))) is not None:
        out["now nullable"] = Edit(f"{col['name']} may now be null", MAJOR, edit_column(col["name"], required=False))
    out["added"] = Edit("promo_code (string, optional) added", MINOR, lambda doc: properties(doc).append(
        {"name": "promo_code", "logicalType": "string", "physicalType": "string", "required": False,
         "classification": "internal", "description": "Promotion code, when one was used."}))  # fmt: skip
    if (col := pick(lambda p: wider(p["physicalType"]) is not None)) is not None:
        new = wider(col["physicalType"])
        out["widened"] = Edit(f"{col['name']} {col['physicalType']} → {new}", MINOR,
                              edit_column(col["name"], physicalType=new, logicalType=logical(new)))  # fmt: skip
    if (col := pick(lambda p: not p.get("required"))) is not None:
        out["now required"] = Edit(f"{col['name']} now required", MINOR, edit_column(col["name"], required=True))
    if (col := pick(lambda p: True)) is not None:
        out["described"] = Edit(f"{col['name']}'s description reworded", PATCH,
                                edit_column(col["name"], description=f"{col.get('description', '')} (reworded)"))  # fmt: skip
    out["tagged"] = Edit("a tag added", PATCH, lambda doc: doc.setdefault("tags", []).append("reviewed"))
    return out


def narrower(physical: str) -> str | None:
    if match := re.fullmatch(r"decimal\((\d+),(\d+)\)", physical):
        return f"decimal({int(match.group(1)) - 2},{match.group(2)})"
    return NARROWER.get(physical)


def wider(physical: str) -> str | None:
    if match := re.fullmatch(r"decimal\((\d+),(\d+)\)", physical):
        return f"decimal({int(match.group(1)) + 2},{match.group(2)})"
    return WIDER.get(physical)


def logical(physical: str) -> str:
    return {"bigint": "integer", "int": "integer", "string": "string", "date": "date", "timestamp": "timestamp"}.get(
        physical, "number"
    )


@dataclass(frozen=True)
class Release:
    """A proposed contract against the published one, and what the gate must answer."""

    what: str
    published: DataContract
    proposed: DataContract
    step: str
    allowed: bool


def releases(rng: np.random.Generator) -> list[Release]:
    """Each kind of edit (and three combinations) released as a patch, a minor and a major; two out-of-order versions."""
    major, patch = int(rng.integers(1, 4)), int(rng.integers(7, 10))
    published_version = f"{major}.9.{patch}"
    steps = {PATCH: f"{major}.9.{patch + 1}", MINOR: f"{major}.10.0", MAJOR: f"{major + 1}.0.0"}
    out = []
    for path in CONTRACT_FILES:
        base = load_document(path) | {"version": published_version}
        published = DataContract.from_document(base, f"{path.name} {published_version}")
        kinds = edits(base, rng)
        names = list(kinds)
        combos = [[kinds[name]] for name in names]
        combos += [[kinds[a], kinds[b]] for a, b in (rng.choice(names, 2, replace=False) for _ in range(2))]
        for combo in combos:
            document = copy.deepcopy(base)
            for edit in combo:
                edit.apply(document)
            needs = max(e.needs for e in combo)
            what = f"{published.product}: " + " and ".join(e.what for e in combo)
            for step, version in steps.items():
                proposed = DataContract.from_document(document | {"version": version}, f"{path.name} {version}")
                out.append(Release(f"{what}, released as {version} (a {STEP_NAMES[step]}; it needs a "
                                   f"{STEP_NAMES[needs]})", published, proposed, STEP_NAMES[step], step >= needs))  # fmt: skip
        added = copy.deepcopy(base)
        kinds["added"].apply(added)
        for version in (published_version, f"{major}.8.{patch + 1}"):
            proposed = DataContract.from_document(added | {"version": version}, f"{path.name} {version}")
            out.append(Release(f"{published.product}: promo_code added, released as {version} after "
                               f"{published_version} (not higher)", published, proposed, "none", False))  # fmt: skip
    return out


def check_breaking_change_gate(learner: LearnerCode, ctx: CheckContext) -> str:
    """Every kind of contract edit on three products, released at every step: blocked exactly when too small."""
    release_allowed = learner.function("release_allowed", ("published", "proposed"))
    cases = releases(np.random.default_rng(ctx.seed()))
    decided = [(case, release_allowed(case.published, case.proposed)) for case in cases]
    for case, answer in decided:
        expect(isinstance(answer, bool | np.bool_), "release_allowed returns True or False", f"{case.what}: {answer!r}")
    slipped = [case for case, answer in decided if answer and not case.allowed]
    expect(not slipped, "a release smaller than its change is blocked",
           f"{len(slipped)} of {sum(not c.allowed for c in cases)} releases that must be blocked passed the gate: "
           + "; ".join(c.what for c in slipped[:3]))  # fmt: skip
    refused = [case for case, answer in decided if not answer and case.allowed]
    expect(not refused, "a release that covers its change is allowed",
           f"{len(refused)} of {sum(c.allowed for c in cases)} valid releases were blocked: "
           + "; ".join(c.what for c in refused[:3]))  # fmt: skip
    blocked = sum(not c.allowed for c in cases)
    return (
        f"{len(cases)} releases of 3 products (removed, renamed, narrowed, retyped, newly nullable, added, widened, "
        f"newly required, reworded, retagged, combined; patch/minor/major, two not higher): {blocked} blocked, "
        f"{len(cases) - blocked} allowed, each as the semantic-version rule says"
    )


# --- integration/04.1: a product that keeps its contract ---------------------------------------

RULE_ORDER = ("order_id_not_null", "status_known", "amount_is_price_times_quantity")
UNKNOWN_STATUSES = ("cancelled", "on_hold", "lost")


def raw_orders_feed(ctx: CheckContext) -> tuple[Any, dict[str, Any]]:
    """The orders feed as delivered (null keys, redelivered copies), plus unknown statuses and wrong amounts.

    Returns the feed and its truth: the valid order ids, each broken row's first failed rule, the copies.
    """
    import pandas as pd

    from expert.runtime.data import Dirt, EcommerceWorld

    rng = np.random.default_rng(ctx.seed(1))
    world = EcommerceWorld(2_500, seed=ctx.seed(), dirt=Dirt(duplicate_rate=0.06, null_key_rate=0.03))
    feed, dirt = world.deliver("orders", "order_id")
    feed = feed.reset_index(drop=True)
    counts = feed["order_id"].value_counts()
    single = feed.index[feed["order_id"].map(counts).eq(1).fillna(False).astype(bool)].to_numpy()
    picked = rng.permutation(single)
    share = max(3, len(single) // 15)
    bad_status, bad_amount = picked[:share], picked[share : 2 * share]
    feed.loc[bad_status, "status"] = rng.choice(UNKNOWN_STATUSES, len(bad_status))
    multi = [i for i in bad_amount if feed.at[i, "quantity"] > 1]
    feed.loc[multi, "amount"] = feed.loc[multi, "unit_price"]
    rest = [i for i in bad_amount if i not in set(multi)]
    feed.loc[rest, "amount"] = (feed.loc[rest, "amount"] + 0.01).round(2)
    failed = pd.Series(None, index=feed.index, dtype=object)
    failed[feed["order_id"].isna()] = "order_id_not_null"
    failed[bad_status] = "status_known"
    failed[bad_amount] = "amount_is_price_times_quantity"
    valid = sorted(int(i) for i in feed.loc[failed.isna(), "order_id"].unique())
    truth = {"valid": valid, "failed": failed, "copies": dirt.duplicates, "rows": len(feed)}
    return feed, truth


def measured_rules(rows: Any) -> dict[str, float]:
    """The orders contract's quality metrics, measured in pandas on the product's rows (apart from the platform)."""
    keyed = rows["order_id"].dropna()
    known = {"placed", "shipped", "delivered", "returned"}
    wrong_amount = [
        a != p * int(q) for a, p, q in zip(rows["amount"], rows["unit_price"], rows["quantity"], strict=True)
    ]
    return {
        "order_id_not_null": float(rows["order_id"].isna().sum()),
        "order_id_unique": float(len(keyed) - keyed.nunique()),
        "status_known": float((rows["status"].notna() & ~rows["status"].isin(known)).sum()),
        "orders_not_empty": float(len(rows)),
        "amount_is_price_times_quantity": float(sum(wrong_amount)),
    }


def check_contract_quality(learner: LearnerCode, ctx: CheckContext) -> str:
    """A dirty orders feed through the learner's product: every contract rule passes, nothing is lost."""
    from expert.mesh.platform import cast_to_contract

    orders_product = learner.function("orders_product", ("raw",))
    spark = ctx.spark
    contract = DataContract.from_document(load_document(CONTRACT_FILES[0]), CONTRACT_FILES[0].name)
    feed, truth = raw_orders_feed(ctx)
    result = orders_product(cast_to_contract(feed, contract, spark))
    expect(isinstance(result, tuple) and len(result) == 2, "orders_product returns (product, quarantine)",
           f"got {type(result).__name__}")  # fmt: skip
    product, quarantine = result
    expected = [(c.name, c.physical_type) for c in contract.columns]
    actual = [(f.name, f.dataType.simpleString()) for f in product.schema.fields]
    expect(actual == expected, "the product has exactly the contract's columns and types",
           f"expected {[f'{n} {t}' for n, t in expected]}, got {[f'{n} {t}' for n, t in actual]}")  # fmt: skip
    rows = product.toPandas()
    values = measured_rules(rows)
    if set(values) != {r.id for r in contract.quality_rules}:
        raise RuntimeError(f"{contract.source} has rules this check does not measure: update measured_rules")
    failing = [r for r in contract.quality_rules if not r.passes(values[r.id])]
    expect(not failing, "every quality rule of the contract passes (the publish gate accepts the product)",
           "; ".join(f"{r.id} = {values[r.id]:g} (expected {r.expectation})" for r in failing))  # fmt: skip
    got = sorted(int(i) for i in rows["order_id"])
    missing = sorted(set(truth["valid"]) - set(got))
    expect(not missing and got == truth["valid"], "every valid order is published, exactly once",
           f"{len(got)} rows published for {len(truth['valid'])} valid orders; {len(missing)} valid orders missing "
           f"(first {missing[:3]})")  # fmt: skip
    expect("failed_rule" in quarantine.columns, "the quarantine says which rule each row broke (failed_rule)",
           f"quarantine columns: {', '.join(quarantine.columns)}")  # fmt: skip
    kept = quarantine.select("order_id", "failed_rule").toPandas()
    failed = truth["failed"].dropna()
    want_rules = failed.value_counts().to_dict()
    got_rules = kept["failed_rule"].value_counts().to_dict()
    expect(got_rules == want_rules, "each broken row is quarantined once, under the first rule it breaks",
           f"quarantined {got_rules}, expected {want_rules}")  # fmt: skip
    conserved = truth["rows"] == len(got) + len(kept) + truth["copies"]
    expect(conserved, "no row disappears: raw = published + quarantined + redelivered copies",
           f"{truth['rows']} raw rows, {len(got)} published + {len(kept)} quarantined + {truth['copies']} copies")  # fmt: skip
    return (
        f"{truth['rows']} raw rows = {len(got)} published + {len(kept)} quarantined "
        f"({', '.join(f'{n} {rule}' for rule, n in want_rules.items())}) + {truth['copies']} redelivered copies; "
        f"all {len(contract.quality_rules)} contract rules pass"
    )


# --- integration/04.2: the pii-classified policy -----------------------------------------------

CUSTOMER_PII = ("first_name", "last_name", "email", "phone", "birth_date")
"""The customer profile's personal data, as the customers domain classifies it (restricted)."""


@dataclass(frozen=True)
class Planted:
    """A column the check adds to (or changes in) a product, and what the policy must say about it."""

    name: str
    values: list[Any]
    classification: str
    personal: bool
    why: str


def text_values(rng: np.random.Generator, kind: str, n: int, world_customers: Any) -> list[Any]:
    """n text values of a kind: emails/phones from the generator, IPv4s, free text, codes."""
    if kind == "email":
        return list(rng.choice(world_customers["email"].to_numpy(), n))
    if kind == "phone":
        return list(rng.choice(world_customers["phone"].to_numpy(), n))
    if kind == "ip":
        return [".".join(str(int(x)) for x in rng.integers(1, 255, 4)) for _ in range(n)]
    if kind == "code":
        return ["".join(rng.choice(list("ABCDEFGHJKMNPQRSTUVWXYZ23456789"), 10)) for _ in range(n)]
    words = ("asked for a refund", "prefers weekends", "call back later", "VIP since 2024", "gift order")
    return list(rng.choice(words, n))


def planted_columns(rng: np.random.Generator, customers: Any) -> list[Planted]:
    """Personal data under innocent names, sparse columns, protected ones, and text that only sometimes is an email."""
    n = len(customers)

    def mix(kind: str, share: float, other: str = "note", nulls: float = 0.0) -> list[Any]:
        values = [
            v if rng.random() < share else o
            for v, o in zip(text_values(rng, kind, n, customers), text_values(rng, other, n, customers), strict=True)
        ]
        return [None if rng.random() < nulls else v for v in values]

    ip_name = str(rng.choice(["login_origin", "last_seen_from", "client_host"]))
    contact = str(rng.choice(["contact", "primary_contact", "reach_at"]))
    majority = float(rng.uniform(0.55, 0.8))
    minority = float(rng.uniform(0.2, 0.4))
    return [
        Planted(contact, mix("email", 1.0), "internal", True, "email addresses under an innocent name"),
        Planted(ip_name, mix("ip", 1.0), "internal", True, "IPv4 addresses"),
        Planted(
            "callback",
            mix("phone", 1.0, nulls=0.7),
            "internal",
            True,
            "phone numbers in 30% of rows, NULL elsewhere (all of its values are phones)",
        ),
        Planted("remarks", mix("email", majority), "internal", True, f"{majority:.0%} of its values are emails"),
        Planted("notes", mix("email", minority), "internal", False, f"only {minority:.0%} of its values are emails"),
        Planted("referral_code", mix("code", 1.0), "internal", False, "codes, not personal data"),
        Planted("billing_contact", mix("email", 1.0), "restricted", True, "emails, but restricted (masked)"),
    ]


def governance_catalog(ctx: CheckContext) -> list[tuple[DataContract, Any, dict[str, str]]]:
    """Three products as the catalog holds them: contract, a sample of the data, and each column's truth."""
    import pandas as pd

    from expert.runtime.data import EcommerceWorld

    rng = np.random.default_rng(ctx.seed(1))
    world = EcommerceWorld(6_000, seed=ctx.seed())
    customers = world.customers.head(120).reset_index(drop=True)
    planted = planted_columns(rng, customers)
    order = rng.permutation(len(planted))
    shares = [planted[i] for i in order[: len(planted) // 2]], [planted[i] for i in order[len(planted) // 2 :]]
    documents = {path.stem.split(".")[0]: load_document(path) for path in CONTRACT_FILES}
    downgraded = str(rng.choice(list(CUSTOMER_PII)))
    profile = customers.assign(birth_date=customers["birth_date"].astype("datetime64[ns]").dt.date)
    profile["phone"] = [None if rng.random() < 0.2 else p for p in profile["phone"]]
    frames = {
        "customer_profile": profile,
        "orders": world.orders.head(120).reset_index(drop=True),
        "customer_value": pd.DataFrame({"customer_id": customers["customer_id"], "country": customers["country"],
                                        "segment": customers["segment"], "age_band": "35-54", "orders_count": 1,
                                        "revenue": 10.0, "last_order_ts": pd.Timestamp("2026-01-20"), "value_tier": "low"}),
    }  # fmt: skip
    catalog = []
    for name, extra in (("customer_profile", [*shares[0]]), ("orders", []), ("customer_value", [*shares[1]])):
        document = copy.deepcopy(documents[name])
        truth: dict[str, str] = {}
        for prop in properties(document):
            personal = name == "customer_profile" and prop["name"] in CUSTOMER_PII
            if personal and prop["name"] == downgraded:
                prop["classification"] = "internal"
                prop.pop("customProperties", None)
                truth[prop["name"]] = "personal data classified internal by mistake"
        frame = frames[name][[p["name"] for p in properties(document)]].copy()
        for column in extra:
            properties(document).append({"name": column.name, "logicalType": "string", "physicalType": "string",
                                         "classification": column.classification, "required": False})  # fmt: skip
            frame[column.name] = column.values[: len(frame)]
            if column.personal and column.classification == "internal":
                truth[column.name] = column.why
            else:
                truth[f"~{column.name}"] = column.why
        catalog.append((DataContract.from_document(document, f"{name} (catalog)"), frame, truth))
    return catalog


def check_pii_policy(learner: LearnerCode, ctx: CheckContext) -> str:
    """The pii-classified policy over three catalogued products: every violation, and nothing else."""
    unclassified_pii = learner.function("unclassified_pii", ("contract", "sample"))
    findings = []
    for contract, sample, truth in governance_catalog(ctx):
        got = unclassified_pii(contract, sample)
        expect(isinstance(got, list | tuple | set), "unclassified_pii returns a list of column names", f"got {got!r}")
        want = {c for c in truth if not c.startswith("~")}
        missed = sorted(want - set(got))
        expect(not missed, "every unprotected column holding personal data is reported",
               f"{contract.product}: missed " + "; ".join(f"{c} ({truth[c]})" for c in missed))  # fmt: skip
        extra = sorted(set(got) - want)
        expect(not extra, "only personal data is reported, and only where it is not protected",
               f"{contract.product}: reported " + "; ".join(f"{c} ({truth.get('~' + c, 'not personal data')})"
                                                             for c in extra))  # fmt: skip
        findings.append(f"{contract.product.split('.')[-1]}: {', '.join(sorted(want)) or 'compliant'}")
    return "violations found exactly, none invented (sparse, mixed and protected columns judged right): " + "; ".join(
        findings
    )
