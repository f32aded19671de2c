"""The data-mesh platform of integration/04: names, catalog, publish gates, profiling, compliance, lineage.

What a platform team builds so that domain teams can publish data products safely by themselves:

- `names`: Unity Catalog's `catalog.schema.table` on Spark's one session catalog, and what the
  Delta log says about a table (its version, the rows its last commit wrote).
- `catalog`: the product catalog (SQLite): products, versions, tags, columns, grants, lineage,
  shares, and a full-text index; a recursive query for everything downstream of a product.
- `profiling`: one aggregation that measures a candidate against its contract (quality rules,
  nulls, personal data by value and by name, freshness, a content fingerprint).
- `platform`: the one publish path (contract gates, then data gates, then write + register), the
  grants (masked consumer views) and the reader every cross-domain read goes through.
- `compliance`: the report the governance policies fill in, as a matrix, JSON and Markdown.
- `lineage`: the recorded lineage drawn as a terminal tree and a Mermaid graph.
- `sharing`: the recipient side of a Delta Sharing share, stood in for locally.
"""
