"""What a pattern run proved: measured figures, checked invariants and its cloud plan.

The pattern harness fills one `RunReport` per run; the narrator prints it, `expert run` puts its
key figures in the summary table, and tests assert on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    """A number the pattern computed, with its unit and how it was measured."""

    label: str
    value: float | int | str
    unit: str = ""
    how: str = ""
    key: bool = False

    def formatted(self) -> str:
        value = self.value
        if isinstance(value, bool | str):
            text = str(value)
        elif isinstance(value, int):
            text = f"{value:,}"
        elif abs(value) >= 100:
            text = f"{value:,.0f}"
        else:
            text = f"{value:,.3g}" if abs(value) < 1 else f"{value:,.2f}"
        return f"{text} {self.unit}".strip()


@dataclass(frozen=True)
class Check:
    """An invariant the pattern verified (or saw broken)."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class PlanEntry:
    """One step of the cloud plan: a statement or payload that runs on a real service.

    `executed` is true when it ran (cloud mode); otherwise `reason` says why it could not run here.
    `language` names how the text is highlighted and saved (sql, json, yaml, hcl, bash, text).
    """

    service: str
    kind: str
    text: str
    reason: str = ""
    purpose: str = ""
    language: str = "sql"
    executed: bool = False

    @property
    def first_line(self) -> str:
        lines = self.text.strip().splitlines()
        return lines[0] if lines else ""


@dataclass(frozen=True)
class StatementRecord:
    """One statement a Snowflake session issued, as the cloud worksheet needs it."""

    sql: str
    category: str
    ok: bool
    params: object = None
    stand_in: str = ""
    note: str = ""


@dataclass(frozen=True)
class SessionTranscript:
    """Every statement one Snowflake session issued, in order, and where it ran."""

    database: str
    schema: str
    mode: str
    statements: tuple[StatementRecord, ...]


@dataclass
class RunReport:
    """Everything a run established, in the order it happened."""

    pattern_id: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    cloud_plan: list[PlanEntry] = field(default_factory=list)
    snowflake_transcripts: list[SessionTranscript] = field(default_factory=list)
    stand_ins: list[str] = field(default_factory=list)
    step_seconds: list[tuple[str, float]] = field(default_factory=list)
    delta_commits: int | None = None
    delta_merges: int | None = None
    seconds: float = 0.0
    exit_code: int | None = None
    error: str = ""

    def figure(self, label: str) -> Figure:
        for fig in self.figures:
            if fig.label == label:
                return fig
        raise KeyError(label)

    def value(self, label: str) -> float | int | str:
        return self.figure(label).value

    @property
    def cloud_only(self) -> list[str]:
        """The whole text of every cloud step that did not run here, in order."""
        return [entry.text for entry in self.cloud_plan if not entry.executed]

    @property
    def key_figures(self) -> list[Figure]:
        return [f for f in self.figures if f.key]

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """The run as data: `report.json` in the workdir and `expert run --json` hold this."""
        return {
            "id": self.pattern_id,
            "title": self.title,
            "exit_code": self.exit_code,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "checks": [asdict(c) for c in self.checks],
            "figures": [asdict(f) for f in self.figures],
            "step_seconds": [{"step": title, "seconds": round(s, 3)} for title, s in self.step_seconds],
            "stand_ins": list(self.stand_ins),
            "delta_commits": self.delta_commits,
            "delta_merges": self.delta_merges,
            "cloud_plan": [asdict(e) for e in self.cloud_plan],
        }
