"""`expert progress`: the chapter's completion checklist, ticked by what this working tree proved.

Why computed, not self-declared: "Set up monitoring and alerting" is ticked when databricks/02 has
run to a pass here and the monitoring exercises pass, not when a learner says so. The criteria
are data (`[[criterion]]` in exercises/info.toml); "Trained team members" is about people and is
shown as such, never ticked by a tool.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from expert.exercises.catalog import INFO_FILE, Exercise, exercises
from expert.exercises.progress import Progress

console = Console(highlight=False)


@dataclass(frozen=True)
class Criterion:
    """One item of the chapter's completion checklist and what proves it."""

    key: str
    text: str
    patterns: tuple[str, ...]
    capstone: tuple[str, ...]
    manual: bool

    def exercises(self) -> list[Exercise]:
        return [e for e in exercises() if self.key in e.proves]


@cache
def criteria() -> tuple[Criterion, ...]:
    data = tomllib.loads(INFO_FILE.read_text())
    return tuple(
        Criterion(
            key=c["key"],
            text=c["text"],
            patterns=tuple(c.get("patterns", ())),
            capstone=tuple(c.get("capstone", ())),
            manual=bool(c.get("manual", False)),
        )
        for c in data.get("criterion", ())
    )


@dataclass(frozen=True)
class CriterionStatus:
    criterion: Criterion
    done: list[str]
    missing: list[str]

    @property
    def ticked(self) -> bool:
        return not self.criterion.manual and not self.missing


def evaluate(criterion: Criterion, progress: Progress) -> CriterionStatus:
    """What is proved and what is still missing for one criterion."""
    done: list[str] = []
    missing: list[str] = []
    for pattern in criterion.patterns:
        (done if pattern in progress.patterns else missing).append(f"pattern {pattern}")
    for exercise in criterion.exercises():
        (done if progress.status(exercise) == "passed" else missing).append(f"exercise {exercise.id}")
    for requirement in criterion.capstone:
        (done if progress.capstone.get(requirement) else missing).append(f"capstone: {requirement}")
    return CriterionStatus(criterion, done, missing)


def cmd_progress() -> int:
    progress = Progress.load()
    statuses = [evaluate(c, progress) for c in criteria()]
    table = Table(title="Completion criteria (from the course chapter)", title_justify="left")
    table.add_column("", width=2)
    table.add_column("criterion", overflow="fold")
    table.add_column("proved by", overflow="fold")
    table.add_column("still to do", overflow="fold")
    for status in statuses:
        if status.criterion.manual:
            mark, todo = "[dim]·[/]", "not checkable by a tool: this one is done with people"
        else:
            mark, todo = ("[green]✓[/]", "") if status.ticked else ("[red]✗[/]", ", ".join(status.missing))
        table.add_row(mark, escape(status.criterion.text), escape(", ".join(status.done)), escape(todo))
    console.print(table)
    passed = sum(progress.status(e) == "passed" for e in exercises())
    ticked = sum(s.ticked for s in statuses)
    checkable = sum(not s.criterion.manual for s in statuses)
    console.print(
        f"{ticked} of {checkable} checkable criteria met · {passed} of {len(exercises())} exercises passed · "
        f"{len(progress.patterns)} patterns run to a pass here"
    )
    return 0
