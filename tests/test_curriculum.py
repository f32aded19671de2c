"""The curriculum is data: metadata and files agree, and every script has the required shape."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from expert import PROJECT_ROOT
from expert.runtime.pattern import PatternMeta, curriculum, load_module, tracks

SCRIPTS = sorted((PROJECT_ROOT / "expert").glob("*/[0-9][0-9]_*.py"))
WRITTEN = [m for m in curriculum() if m.exists]


def test_ten_patterns_in_three_tracks_in_order() -> None:
    assert tracks() == ("databricks", "snowflake", "integration")
    assert [m.id for m in curriculum()] == [
        "databricks/01", "databricks/02", "databricks/03",
        "snowflake/01", "snowflake/02", "snowflake/03",
        "integration/01", "integration/02", "integration/03", "integration/04",
    ]  # fmt: skip


def test_numbering_has_no_gaps_and_slugs_are_unique() -> None:
    for track in tracks():
        numbers = [m.number for m in curriculum() if m.track == track]
        assert numbers == list(range(1, len(numbers) + 1)), f"{track}: {numbers}"
    assert len({(m.track, m.slug) for m in curriculum()}) == len(curriculum())


def test_every_script_is_in_the_curriculum() -> None:
    listed = {m.path for m in curriculum()}
    assert not [s for s in SCRIPTS if s not in listed], "scripts missing from curriculum.toml"


def test_metadata_is_complete() -> None:
    for meta in curriculum():
        assert meta.title and meta.objectives and meta.minutes > 0, meta.id
        assert set(meta.needs) <= {"spark", "snowflake", "kafka", "mlflow"}, meta.id
        assert meta.local and meta.cloud, meta.id


@pytest.mark.parametrize("meta", WRITTEN, ids=lambda m: m.id)
def test_minutes_are_honest(meta: PatternMeta) -> None:
    """`minutes` covers reading the script at a careful pace, plus its measured run when BENCHMARKS.json has it."""
    assert meta.minutes >= meta.honest_minutes, (
        f"{meta.id}: curriculum.toml says {meta.minutes} min; reading {meta.reading_minutes:.0f} min + running "
        f"{meta.running_minutes or 0:.1f} min needs {meta.honest_minutes}"
    )


def test_every_track_has_a_readme_once_it_has_a_script() -> None:
    for track in {m.track for m in WRITTEN}:
        assert (PROJECT_ROOT / "expert" / track / "README.md").is_file(), track


@pytest.mark.parametrize("meta", WRITTEN, ids=lambda m: m.id)
def test_script_shape(meta: PatternMeta) -> None:
    tree = ast.parse(meta.path.read_text())
    docstring = ast.get_docstring(tree)
    assert docstring and len(docstring.splitlines()) >= 5, "module docstring with objectives and how to run"
    assert f"python expert/{meta.track}/{meta.stem}.py" in docstring, "docstring says how to run it"
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    assert mains, "a main() function"
    main = mains[0]
    assert [a.arg for a in main.args.args] == ["argv"], "main(argv)"
    assert ast.unparse(main.returns) == "int", "main(...) -> int"
    guard = tree.body[-1]
    assert isinstance(guard, ast.If) and "__name__" in ast.unparse(guard.test), "main guard last"
    assert "raise SystemExit(main())" in ast.unparse(guard)
    test_file = PROJECT_ROOT / "tests" / meta.track / f"test_{meta.stem}.py"
    assert test_file.is_file(), f"its own test file {test_file.relative_to(PROJECT_ROOT)}"


@pytest.mark.parametrize("meta", WRITTEN, ids=lambda m: m.id)
def test_importing_a_script_does_nothing(meta: PatternMeta, capfd: pytest.CaptureFixture[str]) -> None:
    from pyspark.sql import SparkSession

    had_session = SparkSession.getActiveSession() is not None
    module = load_module(meta)
    assert callable(module.main)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert (SparkSession.getActiveSession() is not None) == had_session


def test_test_files_belong_to_scripts() -> None:
    stems = {f"test_{m.stem}.py" for m in curriculum()}
    for path in (PROJECT_ROOT / "tests").glob("*/test_[0-9][0-9]_*.py"):
        assert path.name in stems, f"{path} tests no pattern in the curriculum"
        assert Path(path.parent.name) in {Path(t) for t in tracks()}


MAX_SCRIPT_LINES = 700
"""A lesson longer than this is two lessons (CONVENTIONS.md: at most 700 lines, aim for 500)."""


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def calls_in_order(function: ast.FunctionDef, names: set[str]) -> list[str]:
    """The module-level functions `function` calls (or passes on), in the order of their first mention."""
    mentions = sorted(
        (node.lineno, node.col_offset, node.id)
        for node in ast.walk(function)
        if isinstance(node, ast.Name) and node.id in names and node.id != function.name
    )
    return list(dict.fromkeys(name for _, _, name in mentions))


@pytest.mark.parametrize("meta", WRITTEN, ids=lambda m: m.id)
def test_script_reads_in_story_order(meta: PatternMeta) -> None:
    """The steps `body` calls appear in the file in the order of their first call, then `body`, then `main`."""
    tree = ast.parse(meta.path.read_text())
    functions = _functions(tree)
    assert "body" in functions, "a body(run) function: the lesson's table of contents"
    called = calls_in_order(functions["body"], set(functions))
    lines = [functions[name].lineno for name in called]
    out_of_order = [(a, b) for a, b, la, lb in zip(called, called[1:], lines, lines[1:], strict=False) if la > lb]
    assert not out_of_order, f"defined in another order than body calls them: {out_of_order}"
    assert all(line < functions["body"].lineno for line in lines), "every step is defined above body"
    assert functions["body"].lineno < functions["main"].lineno, "main comes after body"


@pytest.mark.parametrize("meta", WRITTEN, ids=lambda m: m.id)
def test_constants_are_defined_before_use(meta: PatternMeta) -> None:
    """A reader never meets a module constant before the line that defines it."""
    tree = ast.parse(meta.path.read_text())
    defined: dict[str, int] = {}
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper():
                defined.setdefault(target.id, node.lineno)
    late = sorted(
        {
            (name.id, name.lineno, defined[name.id])
            for node in tree.body
            for name in ast.walk(node)
            if isinstance(name, ast.Name) and name.id in defined and name.lineno < defined[name.id]
        }
    )
    assert not late, f"used (line) before defined (line): {late}"


@pytest.mark.parametrize("meta", WRITTEN, ids=lambda m: m.id)
def test_script_is_one_lesson(meta: PatternMeta) -> None:
    lines = len(meta.path.read_text().splitlines())
    assert lines <= MAX_SCRIPT_LINES, f"{lines} lines: move machinery to the shared layer or split the lesson"


@pytest.mark.parametrize("meta", WRITTEN, ids=lambda m: m.id)
def test_header_says_why_it_matters(meta: PatternMeta) -> None:
    from expert.runtime.pattern import why_it_matters

    assert len(why_it_matters(meta)) > 80, "the docstring has a 'Why it matters' paragraph the header prints"
