"""The learner's progress, saved in the working tree (`.expert-progress.json`, git-ignored).

It holds the exercises' verdicts, the patterns this working tree ran through to a pass, and the
last capstone check (`expert progress` ticks the chapter's completion criteria from them). `EXPERT_PROGRESS_FILE`
moves it (the test suite keeps its own).

A pass is tied to the file's content: edit a passed exercise and it is "failing" again until it
passes on its new content. Status, as `expert exercises` shows it:
- not started: the file is still the starter as shipped, and it was never checked;
- passed: the last check passed on the file's current content;
- failing: anything else (checked and failed, or edited and not yet passing).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from expert import PROJECT_ROOT
from expert.exercises.catalog import Exercise, file_sha256
from expert.exercises.verdict import Verdict

Status = Literal["not started", "failing", "passed"]


def progress_file() -> Path:
    return Path(os.environ.get("EXPERT_PROGRESS_FILE") or PROJECT_ROOT / ".expert-progress.json")


@dataclass(frozen=True)
class Progress:
    """What this working tree has passed: exercises (by content) and pattern runs."""

    records: dict[str, dict[str, Any]]
    patterns: dict[str, dict[str, Any]]
    capstone: dict[str, bool]

    @classmethod
    def load(cls) -> Progress:
        path = progress_file()
        if not path.is_file():
            return cls({}, {}, {})
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return cls({}, {}, {})
        return cls(dict(data.get("exercises", {})), dict(data.get("patterns", {})), dict(data.get("capstone", {})))

    def save(self) -> None:
        path = progress_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"exercises": self.records, "patterns": self.patterns, "capstone": self.capstone}
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")

    def status(self, exercise: Exercise) -> Status:
        record = self.records.get(exercise.id)
        current = file_sha256(exercise.path) if exercise.path.is_file() else ""
        if record and record.get("sha256") == current and record.get("status") == "passed":
            return "passed"
        if record is None and current == exercise.starter_sha256:
            return "not started"
        return "failing"

    def record(self, verdict: Verdict, file: Path) -> None:
        """Save a verdict on the learner's own file (checks of other files are not progress)."""
        self.records[verdict.exercise] = {
            "status": "passed" if verdict.passed else "failing",
            "sha256": file_sha256(file) if file.is_file() else "",
            "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "seconds": round(verdict.seconds, 2),
            "message": verdict.message if not verdict.passed else "",
        }
        self.save()

    def forget(self, exercise: Exercise) -> None:
        if self.records.pop(exercise.id, None) is not None:
            self.save()

    def pattern_passed(self, pattern_id: str, seconds: float) -> None:
        """A pattern ran through to a pass in this working tree (the harness calls this)."""
        self.patterns[pattern_id] = {
            "passed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
        }
        self.save()

    def capstone_checked(self, results: dict[str, bool]) -> None:
        """The capstone's requirements as the last `expert capstone check` found them."""
        self.capstone.clear()
        self.capstone.update(results)
        self.save()
