"""The `expert` CLI: list, run selection and errors, doctor."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from expert import PROJECT_ROOT
from expert.cli import main
from expert.runtime.errors import ExpertError
from expert.runtime.pattern import curriculum, select_patterns


def test_list_shows_all_ten_patterns_with_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from expert import cli

    monkeypatch.setattr(cli.console, "_width", 240)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for meta in curriculum():
        assert meta.id in out
    assert "databricks track" in out and "integration track" in out
    assert f"{sum(m.exists for m in curriculum())} of 10 patterns ready" in out


@pytest.mark.parametrize(
    ("selector", "ids"),
    [
        ("snowflake", ["snowflake/01", "snowflake/02", "snowflake/03"]),
        ("snowflake/2", ["snowflake/02"]),
        ("integration/03_ml_platform", ["integration/03"]),
        ("databricks/01/", ["databricks/01"]),
    ],
)
def test_run_selectors(selector: str, ids: list[str]) -> None:
    assert [m.id for m in select_patterns(selector)] == ids
    assert len(select_patterns("all")) == 10


def test_unknown_pattern_is_one_plain_message_and_exit_2() -> None:
    with pytest.raises(ExpertError, match="unknown pattern 'databricks/07'"):
        select_patterns("databricks/07")
    result = subprocess.run(
        [sys.executable, "-m", "expert", "run", "databricks/07"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "error: unknown pattern 'databricks/07'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_half_set_credentials_stop_the_cli_with_the_missing_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env_file = tmp_path / ".env"
    env_file.write_text("SNOWFLAKE_ACCOUNT=acct\n")
    result = subprocess.run(
        [sys.executable, "-m", "expert", "doctor", "--quick"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "EXPERT_ENV_FILE": str(env_file), "HOME": str(tmp_path), "COLUMNS": "200"},
    )
    assert result.returncode == 1
    assert "SNOWFLAKE_USER" in result.stdout and "FAIL" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_passes_on_this_machine(
    spark, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from expert import cli

    monkeypatch.setattr(cli.console, "_width", 240)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "spark + delta" in out and "time travel ok" in out
    assert "write_pandas + query ok" in out


def test_doctor_says_where_each_services_settings_came_from_and_shows_no_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A fake HOME with a ~/.databrickscfg profile and a connections.toml connection: doctor picks
    both up, names the files, and fails fast on the unreachable hosts without printing a credential."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    home = tmp_path / "home"
    (home / ".snowflake").mkdir(parents=True)
    (home / ".databrickscfg").write_text(
        f"[DEFAULT]\nhost = http://127.0.0.1:{closed}\ntoken = dapi-doctor-secret-4711\n"
    )
    toml = home / ".snowflake" / "connections.toml"
    toml.write_text(
        f'[default]\naccount = "acct"\nuser = "LEARNER"\npassword = "toml-doctor-secret-4711"\n'
        f'host = "127.0.0.1"\nport = {closed}\nprotocol = "http"\n'
    )
    toml.chmod(0o600)
    result = subprocess.run(
        [sys.executable, "-m", "expert", "doctor", "--quick"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "EXPERT_ENV_FILE": os.devnull,
            "EXPERT_WORK_ROOT": str(tmp_path / "work"),
            "COLUMNS": "400",
            "PYTHONPATH": str(PROJECT_ROOT),
        },
    )
    out = " ".join((result.stdout + result.stderr).split())
    # The table wraps a cell wherever the temporary paths' length puts the break: read it without
    # the column rules and the spaces (the configuration row has nothing in its other columns).
    unwrapped = "".join(c for c in out if not c.isspace() and c != "│")

    def said(text: str) -> bool:
        return "".join(text.split()) in unwrapped

    assert said(f"databricks: cloud (from Databricks config profile [DEFAULT] ({home / '.databrickscfg'})")
    assert said(f"snowflake: cloud (from Snowflake connections.toml [default] ({toml})")
    assert "kafka: local" in out
    assert "Connection refused" in out and result.returncode == 1
    assert "4711" not in out
