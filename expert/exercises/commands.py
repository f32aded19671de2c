"""`expert exercises | check | hint | reset | watch | progress | capstone`: the learning commands.

The names and the JSON shapes are an interface: instructors' scripts rely on them (see
docs/instructors.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from expert import PROJECT_ROOT
from expert.exercises.catalog import Exercise, exercises, file_sha256, find, pristine_starter
from expert.exercises.learner import shown
from expert.exercises.progress import Progress
from expert.exercises.runner import CheckWorker, check_once, log_tail
from expert.exercises.verdict import Verdict
from expert.runtime.errors import ExpertError

console = Console(highlight=False)
WATCH_POLL_S = 0.25


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    listing = sub.add_parser("exercises", help="list every exercise with your status and progress")
    listing.add_argument("--json", action="store_true", help="print the list as JSON (for scripts)")
    check = sub.add_parser("check", help="check one exercise (exit 0 passed, 1 failed, 2 bad input), or all")
    check.add_argument("id", nargs="?", help="the exercise, e.g. snowflake/01.2")
    check.add_argument("--all", action="store_true", help="check every exercise and print a grade table")
    check.add_argument("--report", type=Path, metavar="FILE.json", help="with --all: write the grade report")
    check.add_argument("--summary", type=Path, metavar="FILE.md", help="with --all: append a Markdown grade table")
    check.add_argument("--file", type=Path, help="check this file instead of the exercise's own (grading a copy)")
    check.add_argument("--verbose", action="store_true", help="show the traceback and the check's log on failure")
    hint = sub.add_parser("hint", help="show an exercise's hint")
    hint.add_argument("id")
    reset = sub.add_parser("reset", help="restore an exercise's starter file (your edits are lost)")
    reset.add_argument("id")
    watch = sub.add_parser("watch", help="re-check the current exercise on every save; move on when it passes")
    watch.add_argument("id", nargs="?", help="start at this exercise (default: the first one not passed)")
    sub.add_parser("progress", help="the chapter's completion checklist, ticked by what you have passed")
    capstone = sub.add_parser("capstone", help="verify the capstone's ten requirements from your manifest")
    capstone.add_argument("action", choices=("check",))
    capstone.add_argument("--manifest", type=Path, help="default: capstone/manifest.toml")


def dispatch(args: argparse.Namespace) -> int:  # noqa: PLR0911 (one return per subcommand)
    """Run a learning command; returns the exit code."""
    if args.command == "exercises":
        return cmd_exercises(as_json=args.json)
    if args.command == "check":
        if args.all:
            return cmd_check_all(report=args.report, summary=args.summary, verbose=args.verbose)
        if not args.id:
            raise ExpertError("which exercise?", "give an id (`expert check snowflake/01.1`) or --all")
        return cmd_check(args.id, file=args.file, verbose=args.verbose)
    if args.command == "hint":
        return cmd_hint(args.id)
    if args.command == "reset":
        return cmd_reset(args.id)
    if args.command == "watch":
        return cmd_watch(args.id)
    if args.command == "capstone":
        from expert.exercises.capstone import cmd_capstone

        return cmd_capstone(args.manifest)
    from expert.exercises.completion import cmd_progress

    return cmd_progress()


def cmd_exercises(*, as_json: bool = False) -> int:
    progress = Progress.load()
    rows = [_listing(e, progress) for e in exercises()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="Exercises", title_justify="left")
    for column in ("id", "title", "status", "min", "file"):
        table.add_column(column, overflow="fold")
    colours = {"passed": "green", "failing": "red", "not started": "dim"}
    for row in rows:
        table.add_row(
            row["id"],
            escape(row["title"]),
            f"[{colours[row['status']]}]{row['status']}[/]",
            str(row["minutes"]),
            row["file"],
        )
    console.print(table)
    passed = sum(r["status"] == "passed" for r in rows)
    console.print(f"{passed} of {len(rows)} passed. Next: {_next_hint(rows)}")
    return 0


def _listing(exercise: Exercise, progress: Progress) -> dict[str, Any]:
    return {
        "id": exercise.id,
        "pattern": exercise.pattern,
        "title": exercise.title,
        "file": exercise.file,
        "solution": exercise.solution,
        "status": progress.status(exercise),
        "engine": exercise.engine,
        "minutes": exercise.minutes,
        "proves": list(exercise.proves),
    }


def _next_hint(rows: list[dict[str, Any]]) -> str:
    pending = [r for r in rows if r["status"] != "passed"]
    if not pending:
        return "all done: `expert progress`, then the capstone (capstone/README.md)"
    first = pending[0]
    return f"edit {first['file']}, then `expert check {first['id']}` (or `expert watch`)"


def cmd_check(exercise_id: str, *, file: Path | None = None, verbose: bool = False) -> int:
    exercise = find(exercise_id)
    target = (file or exercise.path).resolve()
    if file is not None and not target.is_file():
        raise ExpertError(f"{file} does not exist", "give the path of the file to check")
    verdict = check_once(exercise, target)
    show_verdict(exercise, verdict, verbose=verbose)
    if file is None:
        Progress.load().record(verdict, target)
    return verdict.exit_code


def show_verdict(exercise: Exercise, verdict: Verdict, *, verbose: bool = False) -> None:
    """A verdict in the pattern's voice: the invariant, the numbers, where, and what to do next."""
    title = f"{exercise.id} · {escape(exercise.title)}"
    if verdict.passed:
        console.print(f"[green]✓[/] {title} [dim]({verdict.seconds:.1f} s)[/]")
        console.print(f"  [green]proved:[/] {escape(verdict.message)}")
        return
    mark = "[yellow]![/]" if verdict.status == "bad-input" else "[red]✗[/]"
    console.print(f"{mark} {title} [dim]({verdict.seconds:.1f} s)[/]")
    if verdict.status == "bad-input":
        console.print(f"  [yellow]cannot check yet:[/] {escape(verdict.message)}")
    else:
        console.print(f"  [red]invariant broken:[/] {escape(verdict.invariant)}")
        console.print(f"  {escape(verdict.message)}")
    if verdict.where:
        console.print(f"  [dim]at {escape(verdict.where)}[/]")
    if verbose and verdict.traceback:
        console.print(f"[dim]{escape(verdict.traceback)}[/]")
    if verbose:
        tail = log_tail(CheckWorker().log_path)
        if tail:
            console.print(f"[dim]last lines of the check's log:\n{escape(tail)}[/]")
    console.print(f"  [dim]stuck? `expert hint {exercise.id}` · details: --verbose[/]")


def cmd_check_all(*, report: Path | None, summary: Path | None, verbose: bool = False) -> int:
    for out in (report, summary):
        if out is not None and out.is_dir():
            raise ExpertError(f"{out} is a directory", "give a file path for the report")
    progress = Progress.load()
    verdicts: list[tuple[Exercise, Verdict]] = []
    with CheckWorker() as worker:
        for exercise in exercises():
            verdict = worker.check(exercise, exercise.path)
            progress.record(verdict, exercise.path)
            verdicts.append((exercise, verdict))
            show_verdict(exercise, verdict, verbose=verbose)
    _print_grades(verdicts)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(grade_report(verdicts), indent=2) + "\n")
        console.print(f"grade report: {report}")
    if summary is not None:
        with summary.open("a") as out:
            out.write(markdown_grades(verdicts))
    return 0 if all(v.passed for _, v in verdicts) else 1


def grade_report(verdicts: Iterable[tuple[Exercise, Verdict]]) -> dict[str, Any]:
    """The grade report an instructor collects: one entry per exercise, and the totals."""
    entries = [
        {
            "id": e.id,
            "pattern": e.pattern,
            "title": e.title,
            "file": e.file,
            "sha256": file_sha256(e.path) if e.path.is_file() else "",
            **{k: v for k, v in verdict.as_dict().items() if k not in ("exercise", "traceback")},
        }
        for e, verdict in verdicts
    ]
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "passed": sum(e["status"] == "passed" for e in entries),
        "total": len(entries),
        "exercises": entries,
    }


def markdown_grades(verdicts: Iterable[tuple[Exercise, Verdict]]) -> str:
    pairs = list(verdicts)
    lines = [
        f"### Exercises: {sum(v.passed for _, v in pairs)} of {len(pairs)} passed",
        "",
        "| exercise | title | result | detail |",
        "|---|---|---|---|",
    ]
    for exercise, verdict in pairs:
        result = {"passed": "✅ passed", "failed": "❌ failed", "bad-input": "⚠️ cannot check"}[verdict.status]
        detail = verdict.message if verdict.passed else f"{verdict.invariant}: {verdict.message}".strip(": ")
        lines.append(f"| {exercise.id} | {exercise.title} | {result} | {detail.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _print_grades(verdicts: list[tuple[Exercise, Verdict]]) -> None:
    table = Table(title="Grades", title_justify="left")
    for column in ("exercise", "result", "seconds", "invariant"):
        table.add_column(column, overflow="fold")
    for exercise, verdict in verdicts:
        colour = "green" if verdict.passed else "red"
        table.add_row(
            exercise.id, f"[{colour}]{verdict.status}[/]", f"{verdict.seconds:.1f}", escape(verdict.invariant)
        )
    console.print(table)
    console.print(f"{sum(v.passed for _, v in verdicts)} of {len(verdicts)} passed")


def _commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout.strip()


def cmd_hint(exercise_id: str) -> int:
    exercise = find(exercise_id)
    console.print(f"[bold]{exercise.id} · {escape(exercise.title)}[/]")
    console.print(f"[dim]task:[/] {escape(exercise.task)}")
    console.print(f"[bold]hint:[/] {escape(exercise.hint)}")
    console.print(f"[dim]reference solution (read it after you pass): {exercise.solution}[/]")
    return 0


def cmd_reset(exercise_id: str) -> int:
    exercise = find(exercise_id)
    exercise.path.parent.mkdir(parents=True, exist_ok=True)
    exercise.path.write_bytes(pristine_starter(exercise))
    Progress.load().forget(exercise)
    console.print(f"{exercise.file} is the starter again.")
    return 0


def cmd_watch(start: str | None) -> int:
    """Check the current exercise, then again on every save; when it passes, move to the next."""
    ordered = list(exercises())
    progress = Progress.load()
    index = (
        ordered.index(find(start))
        if start
        else next((i for i, e in enumerate(ordered) if progress.status(e) != "passed"), len(ordered))
    )
    if index == len(ordered):
        console.print("Every exercise has passed. `expert progress` shows your checklist.")
        return 0
    console.print("[dim]watching: save the file to re-check · Ctrl-C to stop[/]")
    with CheckWorker() as worker:
        try:
            while index < len(ordered):
                exercise = ordered[index]
                console.rule(f"{exercise.id} · {escape(exercise.title)}")
                console.print(f"edit [bold]{exercise.file}[/]")
                if _check_until_passed(worker, exercise, progress):
                    index += 1
        except KeyboardInterrupt:
            console.print("\nstopped watching.")
            return 130
    console.print("[green]Every exercise has passed.[/] `expert progress` shows your checklist.")
    return 0


def _check_until_passed(worker: CheckWorker, exercise: Exercise, progress: Progress) -> bool:
    last_seen = ""
    while True:
        current = file_sha256(exercise.path) if exercise.path.is_file() else ""
        if current != last_seen:
            last_seen = current
            verdict = worker.check(exercise, exercise.path)
            progress.record(verdict, exercise.path)
            show_verdict(exercise, verdict)
            if verdict.passed:
                return True
            console.print(f"[dim]waiting for changes to {shown(exercise.path)} …[/]")
        time.sleep(WATCH_POLL_S)
