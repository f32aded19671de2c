"""The dev check of the exercises (rustlings' `dev check`): metadata and files agree, every starter
fails its own check with its own message, every solution passes, and bad input is reported as such."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from expert import PROJECT_ROOT
from expert.exercises.catalog import Exercise, exercises, file_sha256, find, pristine_starter
from expert.exercises.context import CheckContext
from expert.exercises.runner import CheckWorker
from expert.exercises.worker import run_check
from expert.runtime.pattern import curriculum

ALL = exercises()
MIN_PER_PATTERN = 1


def test_ids_files_and_numbering_agree() -> None:
    ids = [e.id for e in ALL]
    assert len(ids) == len(set(ids)), "ids are unique"
    patterns = {m.id for m in curriculum()}
    for exercise in ALL:
        assert exercise.pattern in patterns, exercise.id
        assert exercise.id.startswith(exercise.pattern + "."), exercise.id
        assert exercise.path.is_file() and exercise.solution_path.is_file(), exercise.id
        assert exercise.file.startswith("exercises/") and exercise.solution.startswith("solutions/"), exercise.id
        assert Path(exercise.file).relative_to("exercises") == Path(exercise.solution).relative_to("solutions")
        assert exercise.engine in ("snowflake", "spark", "python"), exercise.id
        assert exercise.hint and exercise.task and exercise.minutes > 0, exercise.id
    for pattern in {e.pattern for e in ALL}:
        numbers = [e.number for e in ALL if e.pattern == pattern]
        assert numbers == list(range(1, len(numbers) + 1)), f"{pattern}: {numbers}"


def test_every_file_in_the_exercise_folders_is_listed() -> None:
    listed = {e.path for e in ALL} | {e.solution_path for e in ALL}
    on_disk = {p.resolve() for folder in ("exercises", "solutions") for p in (PROJECT_ROOT / folder).rglob("*.py")}
    assert on_disk == listed


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.id)
def test_starter_is_the_shipped_starter(exercise: Exercise) -> None:
    assert file_sha256(exercise.path) == exercise.starter_sha256, (
        f"{exercise.file} changed: update starter_sha256 in exercises/info.toml to {file_sha256(exercise.path)}"
    )


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.id)
def test_starter_states_the_task_and_keeps_the_solutions_signatures(exercise: Exercise) -> None:
    starter, solution = (ast.parse(p.read_text()) for p in (exercise.path, exercise.solution_path))
    docstring = ast.get_docstring(starter) or ""
    assert docstring.startswith(f"Exercise {exercise.id} "), "the docstring names the exercise"
    assert f"expert check {exercise.id}" in docstring, "the docstring says how to check it"
    assert "TODO" in exercise.path.read_text(), "the starter marks what to do"
    assert ast.get_docstring(solution) == docstring, "starter and solution state the same task"

    def signatures(tree: ast.Module) -> dict[str, str]:
        return {n.name: ast.unparse(n.args) for n in tree.body if isinstance(n, ast.FunctionDef)}

    assert signatures(starter) == signatures(solution)


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.id)
def test_starter_fails_with_the_exercises_own_message(exercise: Exercise, request: pytest.FixtureRequest) -> None:
    if exercise.engine == "spark":
        request.getfixturevalue("spark")
    verdict = run_check(exercise, exercise.path)
    assert verdict.status == "failed", verdict
    assert verdict.invariant and verdict.message, verdict
    assert " raised " not in verdict.invariant and "not written yet" not in verdict.invariant, (
        "a starter fails an invariant of the technique, not with an exception"
    )


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.id)
def test_solution_passes(exercise: Exercise, request: pytest.FixtureRequest) -> None:
    if exercise.engine == "spark":
        request.getfixturevalue("spark")
    verdict = run_check(exercise, exercise.solution_path)
    assert verdict.status == "passed", verdict


def test_reset_finds_the_shipped_starter_in_git_history() -> None:
    exercise = ALL[0]
    assert pristine_starter(exercise) == exercise.path.read_bytes()


def expert(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "expert", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


SNOWFLAKE_EXERCISE = next(e for e in ALL if e.engine == "snowflake")


def test_cli_lists_exercises_as_json() -> None:
    result = expert("exercises", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == [e.id for e in ALL]
    assert {"id", "pattern", "title", "file", "solution", "status"} <= set(rows[0])
    assert {r["status"] for r in rows} <= {"not started", "failing", "passed"}


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    exercise = SNOWFLAKE_EXERCISE
    failed = expert("check", exercise.id)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "invariant broken" in failed.stdout and "Traceback" not in failed.stdout + failed.stderr
    passed = expert("check", exercise.id, "--file", exercise.solution)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    unknown = expert("check", "snowflake/99.9")
    assert unknown.returncode == 2 and "unknown exercise" in unknown.stderr


def _variant(tmp_path: Path, exercise: Exercise, old: str, new: str) -> Path:
    text = exercise.solution_path.read_text()
    assert old in text
    path = tmp_path / exercise.path.name
    path.write_text(text.replace(old, new, 1))
    return path


def test_bad_input_names_file_and_line(tmp_path: Path) -> None:
    exercise = SNOWFLAKE_EXERCISE
    broken = _variant(tmp_path, exercise, "def ", "def (")
    verdict = run_check(exercise, broken)
    assert verdict.status == "bad-input" and "does not parse" in verdict.message
    assert verdict.where.startswith(str(broken)) and verdict.where.rsplit(":", 1)[1].isdigit()
    source = exercise.solution_path.read_text()
    function = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
    renamed = _variant(tmp_path, exercise, f"def {function.name}(", f"def {function.name}(extra, ")
    verdict = run_check(exercise, renamed)
    assert verdict.status == "bad-input" and "keep the starter's signature" in verdict.message


def test_code_that_raises_is_a_failed_check_at_its_line(tmp_path: Path) -> None:
    exercise = SNOWFLAKE_EXERCISE
    source = exercise.solution_path.read_text()
    function = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
    first = function.body[1] if ast.get_docstring(function) else function.body[0]
    indent = " " * first.col_offset
    lines = source.splitlines()
    lines.insert(first.lineno - 1, f"{indent}raise KeyError('ORDER_ID')")
    path = tmp_path / exercise.path.name
    path.write_text("\n".join(lines) + "\n")
    verdict = run_check(exercise, path)
    assert verdict.status == "failed" and "raised KeyError" in verdict.invariant
    assert verdict.where == f"{path}:{first.lineno}"


def test_an_endless_loop_hits_the_time_limit_and_the_next_check_still_works(tmp_path: Path) -> None:
    exercise = SNOWFLAKE_EXERCISE
    source = exercise.solution_path.read_text()
    function = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
    first = function.body[1] if ast.get_docstring(function) else function.body[0]
    lines = source.splitlines()
    lines.insert(first.lineno - 1, " " * first.col_offset + "while True: pass")
    looping = tmp_path / exercise.path.name
    looping.write_text("\n".join(lines) + "\n")
    with CheckWorker(time_limit_s=3) as worker:
        verdict = worker.check(exercise, looping)
        assert verdict.status == "failed" and verdict.invariant == "time limit", verdict
        assert "time limit of 3 s" in verdict.message
        worker.time_limit_s = None
        assert worker.check(exercise, exercise.solution_path).passed


def solution_plus(tmp_path: Path, exercise: Exercise, code: str) -> Path:
    """A learner file: the exercise's reference solution with `code` appended (run when the check imports it)."""
    learner = tmp_path / exercise.path.name
    learner.write_text(exercise.solution_path.read_text() + f"\n\n{code}\n")
    return learner


def test_the_worker_runs_exit_handlers_though_it_skips_teardown(tmp_path: Path) -> None:
    """A learner's (or a library's) exit handler still runs when the worker exits after its checks."""
    exercise = SNOWFLAKE_EXERCISE
    marker = tmp_path / "exit-handler-ran"
    learner = solution_plus(
        tmp_path, exercise, f"import atexit, pathlib\natexit.register(pathlib.Path({str(marker)!r}).touch)"
    )
    with CheckWorker() as worker:
        assert worker.check(exercise, learner).passed
    assert marker.exists()


def test_a_spark_check_stopped_while_the_warm_server_runs_says_how_to_stop_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The learner's module loops at import, before any Spark work: the limit hits in seconds."""
    import expert.runtime.spark

    exercise = find("databricks/01.3")
    looping = tmp_path / exercise.path.name
    looping.write_text("while True:\n    pass\n" + exercise.solution_path.read_text())
    monkeypatch.setattr(expert.runtime.spark, "warm_server_url", lambda: "sc://127.0.0.1:15002")
    with CheckWorker(time_limit_s=3) as worker:
        verdict = worker.check(exercise, looping)
    assert verdict.invariant == "time limit", verdict
    assert "warm server" in verdict.message and "`expert down` stops the server" in verdict.message
    monkeypatch.setattr(expert.runtime.spark, "warm_server_url", lambda: None)
    with CheckWorker(time_limit_s=3) as worker:
        assert "warm server" not in worker.check(exercise, looping).message


def test_only_a_single_check_worker_is_told_it_is_short_lived(tmp_path: Path) -> None:
    """`expert check ID` starts its worker for one check; watch mode's and `check --all`'s stays."""
    exercise = SNOWFLAKE_EXERCISE
    seen = tmp_path / "argv"
    learner = solution_plus(
        tmp_path, exercise, f"import pathlib, sys\npathlib.Path({str(seen)!r}).write_text(repr(sys.argv))"
    )
    for single_check in (True, False):
        with CheckWorker(single_check=single_check) as worker:
            assert worker.check(exercise, learner).passed
        assert ("--single-check" in seen.read_text()) is single_check


def test_run_check_hands_short_lived_to_the_check_context(monkeypatch: pytest.MonkeyPatch) -> None:
    import expert.exercises.worker

    made: list[bool] = []

    def recording(*args: object, short_lived: bool) -> CheckContext:
        made.append(short_lived)
        return CheckContext(*args, short_lived=short_lived)  # type: ignore[arg-type]

    monkeypatch.setattr(expert.exercises.worker, "CheckContext", recording)
    for short_lived in (True, False):
        assert run_check(SNOWFLAKE_EXERCISE, SNOWFLAKE_EXERCISE.solution_path, short_lived=short_lived).passed
    assert made == [True, False]


def test_only_a_check_context_marked_short_lived_asks_for_a_short_lived_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker marks its contexts; checks run inside a longer process (the tests) get the full JIT."""
    import expert.runtime.spark

    asked: list[bool] = []
    monkeypatch.setattr(expert.runtime.spark, "get_spark", lambda features, short_lived: asked.append(short_lived))
    CheckContext("databricks/01.1").spark  # noqa: B018
    CheckContext("databricks/01.1", short_lived=True).spark  # noqa: B018
    assert asked == [False, True]


def _writes_a_table(built: list[Path]) -> Callable[[Path], None]:
    """A stand-in for a check's input builder: a data file and a log, and a record of each build."""

    def build(directory: Path) -> None:
        built.append(directory)
        (directory / "_delta_log").mkdir(parents=True)
        (directory / "_delta_log" / "00000000000000000000.json").write_text('{"commitInfo": {}}\n')
        (directory / "part-0.parquet").write_bytes(b"rows")

    return build


def test_a_worker_builds_check_inputs_once_and_gives_each_check_a_fresh_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    from expert.exercises import context

    monkeypatch.setattr(context, "_built_templates", set())
    built: list[Path] = []
    first = CheckContext("test/prepared.1").prepared("tables", _writes_a_table(built))
    (first / "part-0.parquet").write_bytes(b"what the learner's code wrote")
    second = CheckContext("test/prepared.1").prepared("tables", _writes_a_table(built))
    assert len(built) == 1 and built[0] != second, "built once, in a template outside the workdir"
    assert (second / "part-0.parquet").read_bytes() == b"rows", "each check starts from the inputs as built"
    log = "_delta_log/00000000000000000000.json"
    assert (second / log).stat().st_mtime == (built[0] / log).stat().st_mtime, "commit times are kept"


def test_a_short_lived_check_builds_its_inputs_in_its_workdir(monkeypatch: pytest.MonkeyPatch) -> None:
    from expert.exercises import context

    monkeypatch.setattr(context, "_built_templates", set())
    built: list[Path] = []
    for _ in range(2):
        ctx = CheckContext("test/prepared.2", short_lived=True)
        assert ctx.prepared("tables", _writes_a_table(built)) == ctx.workdir / "tables"
    assert built == [ctx.workdir / "tables"] * 2 and not context._built_templates


def test_templates_of_exited_workers_are_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    from expert.exercises import context

    monkeypatch.setattr(context, "_built_templates", set())
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = context._template_root() / exited.stdout.strip() / "test_prepared_3" / "tables"
    stale.mkdir(parents=True)
    running = context._template_root() / str(os.getppid()) / "test_prepared_3" / "tables"
    running.mkdir(parents=True)
    CheckContext("test/prepared.3").prepared("tables", _writes_a_table([]))
    assert not stale.parent.parent.exists(), "the exited process's templates are gone"
    assert running.is_dir(), "a running process's templates are kept"
    assert (context._template_root() / str(os.getpid()) / "test_prepared_3" / "tables").is_dir()


def test_a_template_removed_under_a_running_worker_is_built_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from expert.exercises import context

    monkeypatch.setattr(context, "_built_templates", set())
    built: list[Path] = []
    CheckContext("test/prepared.4").prepared("tables", _writes_a_table(built))
    shutil.rmtree(context._template_root())
    again = CheckContext("test/prepared.4").prepared("tables", _writes_a_table(built))
    assert len(built) == 2 and (again / "part-0.parquet").read_bytes() == b"rows"


def test_find_rejects_unknown_ids_with_the_known_ones() -> None:
    from expert.runtime.errors import ExpertError

    with pytest.raises(ExpertError, match="unknown exercise"):
        find("snowflake/01.99")
