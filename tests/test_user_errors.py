"""User errors are user errors: exit 2 with what, where and the fix; never "a bug in the pattern" (issue 17.6).

A table of inputs a learner can get wrong, driven through `expert` and through the scripts' own
`main`. Every one fails before Spark starts (the settings, the arguments, the endpoint probes and
the lakehouse root are all checked first), so the table costs seconds.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from expert import PROJECT_ROOT
from expert.cli import main as expert_main
from expert.runtime.pattern import REPORTS, load_module, select_patterns

SNOWFLAKE_LOGIN = "SNOWFLAKE_ACCOUNT=acct\nSNOWFLAKE_USER=LEARNER\n"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _script(pattern: str, *argv: str) -> Callable[[], int]:
    (meta,) = select_patterns(pattern)
    return lambda: load_module(meta).main(["--quiet", *argv])


def _not_a_delta_root(tmp_path: Path) -> str:
    root = tmp_path / "not-delta"
    (root / "tables" / "bronze_orders").mkdir(parents=True)
    (root / "tables" / "bronze_orders" / "orders.csv").write_text("id\n1\n")
    return str(root)


CASES: list[tuple[str, str, Callable[[Path], Callable[[], int]], str]] = [
    # (case, .env text, what runs, a phrase the error must contain)
    ("negative seed", "", lambda tmp: _script("snowflake/01", "--seed", "-1"), "--seed -1 is negative"),
    ("rows below the generator's minimum", "", lambda tmp: _script("snowflake/01", "--rows", "5"), "at least 100"),
    ("rows of zero", "", lambda tmp: _script("snowflake/02", "--rows", "0"), "--rows 0"),
    (
        "non-numeric login timeout",
        SNOWFLAKE_LOGIN + "SNOWFLAKE_PASSWORD=pw\nSNOWFLAKE_LOGIN_TIMEOUT=soon\n",
        lambda tmp: _script("snowflake/02"),
        "SNOWFLAKE_LOGIN_TIMEOUT='soon' is not a whole number",
    ),
    (
        "port out of range",
        SNOWFLAKE_LOGIN + "SNOWFLAKE_PASSWORD=pw\nSNOWFLAKE_PORT=70000\n",
        lambda tmp: _script("snowflake/02"),
        "SNOWFLAKE_PORT='70000'",
    ),
    (
        "retry timeout of zero",
        "DATABRICKS_HOST=https://h.cloud.databricks.com\nDATABRICKS_TOKEN=t\nDATABRICKS_RETRY_TIMEOUT=0\n",
        lambda tmp: _script("databricks/01"),
        "DATABRICKS_RETRY_TIMEOUT='0'",
    ),
    (
        "missing key file",
        SNOWFLAKE_LOGIN + "SNOWFLAKE_PRIVATE_KEY_FILE=/nonexistent/rsa_key.p8\n",
        lambda tmp: _script("snowflake/03"),
        "/nonexistent/rsa_key.p8: there is no such file",
    ),
    (
        "key file that is not a key",
        SNOWFLAKE_LOGIN + "SNOWFLAKE_PRIVATE_KEY_FILE={tmp}/notes.txt\n",
        lambda tmp: _script("snowflake/03"),
        "is not a PEM private key",
    ),
    (
        "a typo in .env",
        "SNOWFLAKE_ACOUNT=acct\n",
        lambda tmp: _script("snowflake/01"),
        "did you mean SNOWFLAKE_ACCOUNT?",
    ),
    (
        "Snowflake refusing connections",
        SNOWFLAKE_LOGIN
        + "SNOWFLAKE_PASSWORD=pw\nSNOWFLAKE_HOST=127.0.0.1\nSNOWFLAKE_PROTOCOL=http\nSNOWFLAKE_PORT={port}\n",
        lambda tmp: _script("snowflake/02"),
        "Connection refused",
    ),
    (
        "unreachable Kafka bootstrap",
        "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}\n",
        lambda tmp: _script("integration/02"),
        "could not connect to the Kafka broker at 127.0.0.1:",
    ),
    (
        "a non-Delta directory at --root",
        "",
        lambda tmp: _script("databricks/01", "--root", _not_a_delta_root(tmp)),
        "is not a Delta table",
    ),
    (
        "--json that is a directory",
        "",
        lambda tmp: lambda: expert_main(["run", "snowflake/02", "--quiet", "--json", str(tmp)]),
        "is a directory",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_user_error_exits_2_with_what_where_and_the_fix(
    case: tuple[str, str, Callable[[Path], Callable[[], int]], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, dotenv, make_run, phrase = case
    (tmp_path / "notes.txt").write_text("not a key\n")
    env_file = tmp_path / ".env"
    env_file.write_text(dotenv.format(tmp=tmp_path, port=_closed_port()))
    monkeypatch.setenv("EXPERT_ENV_FILE", str(env_file))
    reports_before = len(REPORTS)
    code = make_run(tmp_path)()
    output = capsys.readouterr()
    text = " ".join((output.out + output.err).split())
    assert code == 2, f"{name}: exit {code}\n{text}"
    assert phrase in text, f"{name}: {phrase!r} not in\n{text}"
    assert "error:" in text and "fix:" in text
    assert "Traceback" not in text and "bug in the pattern" not in text
    if len(REPORTS) > reports_before:
        assert REPORTS[-1].exit_code == 2


def test_a_script_and_the_cli_exit_2_as_processes() -> None:
    for command in (
        [sys.executable, "expert/snowflake/01_enterprise_patterns.py", "--seed", "-3"],
        [sys.executable, "-m", "expert", "run", "snowflake/01", "--json", "expert"],
    ):
        result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
