"""The product catalog: a small SQL database of products, like the metastore behind Unity Catalog.

Why SQL: "who owns this?", "what reads this?", "which products hold personal data?" are queries.
Products, their versions, tags, columns, grants, lineage edges and shares are tables; free-text
search is SQLite's FTS5 index; impact analysis is one recursive query over the lineage edges.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expert.runtime.contracts import DataContract
from expert.runtime.errors import ExpertError

if TYPE_CHECKING:
    from expert.mesh.platform import Read

SEARCHES = {
    "domain": "SELECT product FROM products WHERE domain = ?",
    "tag": "SELECT product FROM tags WHERE tag = ?",
    "owner": "SELECT product FROM products WHERE owner = ?",
    "text": "SELECT product FROM search WHERE search MATCH ?",
}
"""How a consumer finds products: by domain, tag, owner, or free text (FTS5)."""
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

    def find(self, by: str, value: str) -> set[str]:
        """The products a search `by` domain, tag, owner or text finds for `value`."""
        return {row["product"] for row in self.query(SEARCHES[by], (value,))}

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
        return DataContract.from_document(json.loads(rows[0]["contract"]), f"catalog:{product}") if rows else None

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

    def versions(self, product: str) -> list[str]:
        """Every version of `product` ever published, in order."""
        rows = self.query("SELECT version FROM product_versions WHERE product = ? ORDER BY version", (product,))
        return [r["version"] for r in rows]

    def impact(self, product: str, broken: set[str]) -> list[dict[str, Any]]:
        """Every product downstream of `product`, and which `broken` columns its direct reads use."""
        rows = []
        for row in self.downstream_of(product):
            used = set(row["columns"].split(",")) if row["depth"] == 1 else set()
            rows.append(
                {
                    "downstream": row["product"],
                    "owner": row["owner"],
                    "depth": row["depth"],
                    "reads": row["columns"],
                    "broken columns": ", ".join(sorted(used & broken)) or "-",
                    "action": "must migrate before its next build" if used & broken else "unaffected",
                }
            )
        return rows

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
    parts = [contract.product, contract.purpose, contract.usage]
    parts += [f"{c.name} {c.description}" for c in contract.columns]
    return " ".join(parts)
