"""Simulated upstream systems a lakehouse ingests from, run for real on this machine.

Why simulated, and why real: integration/01 ingests from an operational database and a partner's
paginated HTTP API. Neither exists on a laptop, so this package plays them: a SQLite product
catalogue the shop writes to (`operational_db`) and a payments API served on 127.0.0.1
(`payments_api`). They speak the real protocols (SQL through a driver; HTTP with an opaque
cursor, `next` links and a transient 503), so the ingestion code a learner reads in the pattern
is the code that would run against the real systems.
"""
