"""Where a release is built and where it is served: one object, so every path derives from one place.

Why: a staging build, the live tables and the release log must never be confused, and a rerun
must find them where the last run left them. Staged builds live under the staging medallion
(`releases/<version>/<table>`), live tables under one production root, the log beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from expert.lakehouse import MedallionLayout


@dataclass(frozen=True)
class Environments:
    """A staging medallion (and its staged builds), a production root of live tables, a release log."""

    staging: MedallionLayout
    live_root: Path
    release_log: str

    @classmethod
    def under(cls, staging: MedallionLayout, production: Path) -> Environments:
        """Live tables in `production/live`, the release log in `production/_release_log`."""
        return cls(staging, production / "live", str(production / "_release_log"))

    def staged(self, release: str, table: str) -> str:
        return self.staging.location("releases", release, table)

    def live(self, table: str) -> str:
        return str(self.live_root / table)
