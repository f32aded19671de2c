"""The ML platform's shared layer (integration/03): everything the lesson uses but does not teach.

- `split`: the deterministic, stateless traffic split (sha256 of experiment and unit), and the
  proof that fresh processes agree on it.
- `stats`: the two-proportion z-test, its interval and minimum detectable effect, the promotion
  gate, population stability index (PSI) per feature, precision@k (re-exports the split).
- `campaign`: the view-only campaign traffic that makes the features drift after launch.
- `features`: the daily feature jobs (activity snapshots, profile), scoring moments and labels,
  and the ground truth the pattern checks them against.
- `training`: the scikit-learn pipeline, the cross-validated search, MLflow logging and registration.
- `tracking`: MLflow on a local SQLite store by default (or a remote server / Databricks), with
  its console noise kept out of the narration and its first-use migration measured.
- `registry`: reads of the model registry (what an alias points at, lineage, a version's score).
- `serving`: a registered model version served over HTTP on 127.0.0.1 by MLflow's own scoring
  app, the one `mlflow models serve` runs; the same version as a Spark UDF; the Model Serving request.
- `experiment`: an A/B test of two versions through their endpoints, outcomes simulated from truth.
"""
