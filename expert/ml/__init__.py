"""Small, tested building blocks of the ML platform pattern (integration/03).

- `split`: the deterministic, stateless traffic split (sha256 of experiment and unit).
- `stats`: the two-proportion z-test and its minimum detectable effect, the promotion gate,
  population stability index (PSI) and precision@k (re-exports the split).
- `tracking`: MLflow on a local SQLite store by default (or a remote server / Databricks), with
  its console noise kept out of the narration and its first-use migration measured.
- `serving`: a registered model version served over HTTP on 127.0.0.1 by MLflow's own scoring
  app, the one `mlflow models serve` runs.
"""
