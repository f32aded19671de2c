"""Every pattern script runs end to end through its `main()` at default size and verifies itself.

One parametrized test per script found on disk (`expert/*/NN_*.py`), as delta-io/delta's
run-integration-tests.py treats every example as a test. The run is shared (cached) with the
pattern's own test file through the `pattern_run` fixture.
"""

from __future__ import annotations

import pytest

from expert.runtime.pattern import PatternMeta, curriculum

WRITTEN = [m for m in curriculum() if m.exists]


@pytest.mark.slow
@pytest.mark.parametrize("meta", WRITTEN, ids=lambda m: m.id)
def test_pattern_runs_and_verifies_itself(meta: PatternMeta, pattern_run) -> None:  # type: ignore[no-untyped-def]
    outcome = pattern_run(meta.id)
    assert outcome.exit_code == 0, outcome.report.error
    assert outcome.report.checks, "a pattern verifies at least one invariant"
    assert all(check.passed for check in outcome.report.checks)
    assert outcome.report.figures, "a pattern reports at least one computed figure"
    assert outcome.workdir.is_dir() and any(outcome.workdir.iterdir()), "its state lives in its workdir"
