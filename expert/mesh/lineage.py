"""Lineage as the platform recorded it: a tree for the terminal and a Mermaid graph for the docs.

Why both: a person reading a run wants the tree (what was built from what, at which version); a
wiki or a pull request renders Mermaid. Both are drawn from the catalog's grants, lineage edges
and shares, so they show what the platform observed, not what anyone declared.
"""

from __future__ import annotations

from typing import Any

from expert.mesh.catalog import ProductCatalog


def _records(
    catalog: ProductCatalog,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    products = {r["product"]: r for r in catalog.query("SELECT product, version FROM products")}
    edges = catalog.query("SELECT * FROM lineage ORDER BY upstream")
    grants = catalog.query("SELECT * FROM grants ORDER BY product")
    shares = catalog.query("SELECT * FROM shares ORDER BY product, platform")
    return products, edges, grants, shares


def lineage_tree(catalog: ProductCatalog) -> list[str]:
    """Each source product, then indented: its granted views, the products built from them, its shares."""
    products, edges, grants, shares = _records(catalog)
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

    out = []
    for root in roots:
        out.append(f"{root} {products[root]['version']}")
        out += children(root, 0)
    return out


def lineage_mermaid(catalog: ProductCatalog) -> tuple[str, dict[str, int]]:
    """The Mermaid flowchart, and how many grants, reads and shares the catalog holds (each drawn once)."""
    products, edges, grants, shares = _records(catalog)
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
    return "\n".join(mermaid) + "\n", {"grants": len(grants), "reads": len(edges), "shares": len(shares)}
