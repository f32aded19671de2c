"""Lakehouse Expert Patterns: runnable Snowflake + Databricks integration patterns.

Importing this package is instant and side-effect free; engines start only when a pattern asks.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository root: `.env`, `.work/` and `.cache/` live here."""
