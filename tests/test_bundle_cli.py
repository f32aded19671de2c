"""The one deployment path: the Databricks CLI's bundle commands (expert/release/bundle_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from expert.release import bundle_cli
from expert.runtime.config import DATABRICKS, resolve_service
from expert.runtime.errors import ExpertError


def test_validate_then_deploy_for_the_target_with_its_variables() -> None:
    steps = bundle_cli.commands("staging", [("deployer_application_id", "abc")])
    assert steps == [
        ["databricks", "bundle", "validate", "-t", "staging", "--var=deployer_application_id=abc"],
        ["databricks", "bundle", "deploy", "-t", "staging", "--var=deployer_application_id=abc"],
    ]
    script = bundle_cli.as_script(steps, Path("/repo/deploy/databricks"), Path("/repo"))
    assert script.splitlines() == [
        "cd deploy/databricks",
        "databricks bundle validate -t staging --var=deployer_application_id=abc",
        "databricks bundle deploy -t staging --var=deployer_application_id=abc",
    ]


def test_cloud_mode_without_the_cli_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExpertError) as missing:
        bundle_cli.cli()
    assert "`databricks`" in missing.value.message and "Databricks CLI" in missing.value.fix


def test_the_legacy_python_cli_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    legacy = tmp_path / "databricks"
    legacy.write_text("#!/bin/sh\necho 'Version 0.18.0'\n")
    legacy.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExpertError, match="no `bundle` command"):
        bundle_cli.cli()


def test_the_commands_run_in_the_bundle_directory_with_the_workspace_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = tmp_path / "bin" / "databricks"
    cli.parent.mkdir()
    log = tmp_path / "calls.log"
    cli.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "Databricks CLI v0.240.0"; exit 0; fi\n'
        f'echo "$PWD $DATABRICKS_HOST ${{DATABRICKS_TOKEN:+token}} $*" >> {log}\n'
        '[ "$2" = "deploy" ] && exit 3\n'
        "exit 0\n"
    )
    cli.chmod(0o755)
    monkeypatch.setenv("PATH", str(cli.parent))
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    workspace = resolve_service(
        DATABRICKS, {"DATABRICKS_HOST": "https://example.cloud.databricks.com", "DATABRICKS_TOKEN": "dapi-x"}
    )
    results = bundle_cli.run(bundle_cli.commands("dev", []), bundle_dir, workspace)
    assert [r.exit_code for r in results] == [0, 3]
    calls = log.read_text().splitlines()
    assert calls == [
        f"{bundle_dir} https://example.cloud.databricks.com token bundle validate -t dev",
        f"{bundle_dir} https://example.cloud.databricks.com token bundle deploy -t dev",
    ]
    assert "dapi-x" not in log.read_text(), "the token reaches the CLI's environment, never its command line"
