"""What a pattern run proved: measured figures, checked invariants and cloud-only steps.

The pattern harness fills one `RunReport` per run; the narrator prints it, `expert run` puts its
key figures in the summary table, and tests assert on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass
class RunReport:
    """Everything a run established, in the order it happened."""

    pattern_id: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    cloud_only: list[str] = field(default_factory=list)
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
    def key_figures(self) -> list[Figure]:
        return [f for f in self.figures if f.key]

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and all(c.passed for c in self.checks)
