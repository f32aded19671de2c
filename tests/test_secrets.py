"""Secrets never leave: not in messages, reprs, tracebacks, reports or files under `.work/` (issue 17.1).

Every setting that can carry a credential gets a distinctive value (each contains `MARK`), the CLI
paths that fail on them run for real (connection errors included: every endpoint is a closed local
port, so each fails at once), and all their output and every file they left are searched for it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from expert import PROJECT_ROOT
from expert.runtime.config import SERVICES, load_settings
from expert.runtime.redact import redact_url, scrub

MARK = "Zq8vK"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _secret_settings(port: int, key_file: Path) -> dict[str, str]:
    """One value per credential-carrying setting, each with MARK in it."""
    return {
        "SNOWFLAKE_ACCOUNT": "acct",
        "SNOWFLAKE_USER": "LEARNER",
        "SNOWFLAKE_PASSWORD": f"sf-password-{MARK}",
        "SNOWFLAKE_PRIVATE_KEY_FILE": str(key_file),
        "SNOWFLAKE_PRIVATE_KEY_FILE_PWD": f"sf-key-passphrase-{MARK}",
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": str(port),
        "SNOWFLAKE_PROTOCOL": "http",
        "DATABRICKS_HOST": f"http://127.0.0.1:{port}",
        "DATABRICKS_TOKEN": f"dapi-token-{MARK}",
        "DATABRICKS_CLIENT_ID": "sp-client",
        "DATABRICKS_CLIENT_SECRET": f"oauth-secret-{MARK}",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "kafka-user",
        "KAFKA_SASL_PASSWORD": f"kafka-password-{MARK}",
        "MLFLOW_TRACKING_URI": f"http://ml-user:ml-password-{MARK}@127.0.0.1:{port}",
        "SPARK_REMOTE": f"sc://127.0.0.1:{port}/;token=spark-token-{MARK}",
        "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{port}/services/T0/B0/hook-{MARK}",
        "LAKEHOUSE_ROOT": "s3a://bucket/lake",
        "LAKEHOUSE_S3_ENDPOINT": f"http://s3-user:s3-password-{MARK}@127.0.0.1:{port}",
    }


def test_every_credential_setting_is_covered() -> None:
    """The test below must set every secret the settings know about."""
    settings = _secret_settings(1, Path("/k"))
    assert all(key in settings for spec in SERVICES for key in spec.secrets)


def test_failing_cli_paths_print_and_write_no_secret(tmp_path: Path) -> None:
    port = _closed_port()
    key_file = tmp_path / "rsa_key.p8"
    key_file.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nnot a real key\n-----END ENCRYPTED PRIVATE KEY-----\n")
    work = tmp_path / "work"
    secrets = _secret_settings(port, key_file)
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in secrets.items()))
    base = {k: v for k, v in os.environ.items() if k not in secrets}
    base |= {"EXPERT_ENV_FILE": str(env_file), "EXPERT_WORK_ROOT": str(work), "COLUMNS": "300"}
    base["PYTHONPATH"] = str(PROJECT_ROOT)
    only_spark = base | {"EXPERT_ENV_FILE": os.devnull, "SPARK_REMOTE": secrets["SPARK_REMOTE"]}
    only_mlflow = base | {"EXPERT_ENV_FILE": os.devnull, "MLFLOW_TRACKING_URI": secrets["MLFLOW_TRACKING_URI"]}
    only_alerts = base | {"EXPERT_ENV_FILE": os.devnull, "ALERT_WEBHOOK_URL": secrets["ALERT_WEBHOOK_URL"]}
    only_storage = base | {
        "EXPERT_ENV_FILE": os.devnull,
        "LAKEHOUSE_ROOT": secrets["LAKEHOUSE_ROOT"],
        "LAKEHOUSE_S3_ENDPOINT": secrets["LAKEHOUSE_S3_ENDPOINT"],
    }
    python = sys.executable
    runs = [
        ([python, "-m", "expert", "doctor", "--quick"], base),
        ([python, "-m", "expert", "kafka", "status"], base),
        ([python, "-m", "expert", "run", "snowflake/01"], base),
        ([python, "-m", "expert", "run", "databricks/01"], only_spark),
        ([python, "expert/integration/03_ml_platform.py"], only_mlflow),
        ([python, "expert/databricks/02_monitoring.py"], only_alerts),
        ([python, "expert/databricks/01_production_pipelines.py"], only_storage),
    ]
    procs = [
        subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd, env in runs
    ]
    outputs = []
    for (cmd, _), proc in zip(runs, procs, strict=True):
        out, err = proc.communicate(timeout=240)
        outputs.append((" ".join(cmd[1:]), proc.returncode, out + err))
    for name, code, text in outputs:
        assert code != 0, f"{name} should have failed:\n{text}"
        assert "Traceback" not in text, f"{name}:\n{text}"
        assert MARK not in text, f"{name} printed a secret:\n{text}"
    # Each failure names the endpoint (host and port), not its credentials.
    joined = "\n".join(text for _, _, text in outputs)
    assert f"127.0.0.1:{port}" in joined and "Connection refused" in joined
    leaked = [p for p in work.rglob("*") if p.is_file() and MARK.encode() in p.read_bytes()]
    assert not leaked, f"files under the work root hold a secret: {leaked}"


def test_reprs_and_a_traceback_the_harness_prints_hold_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from expert.runtime.pattern import PatternRun, curriculum, run_pattern

    secrets = _secret_settings(_closed_port(), tmp_path / "missing.p8")
    secrets.pop("SNOWFLAKE_PRIVATE_KEY_FILE")
    secrets.pop("SNOWFLAKE_PRIVATE_KEY_FILE_PWD")
    for key in ("SPARK_REMOTE", "MLFLOW_TRACKING_URI", "ALERT_WEBHOOK_URL", "DATABRICKS_TOKEN", "SNOWFLAKE_PASSWORD"):
        monkeypatch.setenv(key, secrets[key])
    monkeypatch.setenv("DATABRICKS_HOST", secrets["DATABRICKS_HOST"])
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "acct")
    monkeypatch.setenv("SNOWFLAKE_USER", "LEARNER")
    settings = load_settings()
    assert MARK not in repr(settings) + str(settings)

    def leaky_body(run: PatternRun) -> None:
        raise RuntimeError(f"a library echoed {secrets['SPARK_REMOTE']} and {secrets['MLFLOW_TRACKING_URI']}")

    meta = next(m for m in curriculum() if m.id == "snowflake/02")
    monkeypatch.setattr("expert.runtime.pattern.preflight", lambda needs, settings: None)
    code = run_pattern(str(meta.path), ["--quiet"], leaky_body)
    captured = capsys.readouterr()
    assert code == 1 and "RuntimeError" in captured.err and "Traceback" in captured.err
    assert MARK not in captured.out + captured.err


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sc://host:15002/;token=abc123;user_id=me", "sc://host:15002"),
        ("http://user:pw@mlflow.example.com:5000/path", "http://mlflow.example.com:5000"),
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com"),
        ("databricks", "databricks"),
    ],
)
def test_redact_url_names_the_endpoint_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_scrub_masks_user_info_and_token_parameters_it_was_never_told_about() -> None:
    text = scrub("failed: sc://h:1/;token=tok999 and http://u:pw999@h/x?password=pw888")
    assert "tok999" not in text and "pw999" not in text and "pw888" not in text
    assert "sc://h:1/" in text


def test_a_short_secret_is_masked_as_a_word_not_inside_other_words() -> None:
    from expert.runtime.redact import register_secret

    register_secret("snow")
    assert scrub("password snow for snowflake/01") == "password ******** for snowflake/01"


def test_an_azure_storage_uris_container_is_not_taken_for_a_credential() -> None:
    uri = "abfss://container@account.dfs.core.windows.net/lakehouse"
    assert scrub(uri) == uri
