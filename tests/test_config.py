"""Configuration: local unless complete, half-set is an error naming keys, secrets never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from expert.runtime.config import (
    DATABRICKS,
    KAFKA,
    SNOWFLAKE,
    SPARK,
    Secret,
    load_settings,
    resolve_service,
)
from expert.runtime.errors import ConfigError

SNOWFLAKE_PASSWORD_ENV = {
    "SNOWFLAKE_ACCOUNT": "myorg-acct",
    "SNOWFLAKE_USER": "LEARNER",
    "SNOWFLAKE_PASSWORD": "pa55-w0rd-never-shown",
}


def test_every_service_is_local_without_settings() -> None:
    settings = load_settings(environ={}, env_file=Path("/nonexistent/.env"))
    assert [s.mode for s in settings.services()] == ["local"] * 6


def test_complete_snowflake_settings_switch_to_cloud() -> None:
    config = resolve_service(SNOWFLAKE, SNOWFLAKE_PASSWORD_ENV)
    assert config.is_cloud
    assert config.get("SNOWFLAKE_ACCOUNT") == "myorg-acct"
    assert config.secret("SNOWFLAKE_PASSWORD") == Secret("pa55-w0rd-never-shown")


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"SNOWFLAKE_ACCOUNT": "acct"}, ["SNOWFLAKE_USER", "SNOWFLAKE_PRIVATE_KEY_FILE"]),
        ({"SNOWFLAKE_ACCOUNT": "acct", "SNOWFLAKE_USER": "me"}, ["one of SNOWFLAKE_PRIVATE_KEY_FILE"]),
        ({"SNOWFLAKE_PASSWORD": "x"}, ["SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER"]),
    ],
)
def test_half_set_snowflake_is_an_error_naming_missing_keys(env: dict[str, str], missing: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_service(SNOWFLAKE, env)
    for key in missing:
        assert key in err.value.message
    assert ".env" in err.value.fix


def test_optional_key_alone_is_an_error_not_a_silent_fallback() -> None:
    with pytest.raises(ConfigError, match="SNOWFLAKE_WAREHOUSE set, but not SNOWFLAKE_ACCOUNT"):
        resolve_service(SNOWFLAKE, {"SNOWFLAKE_WAREHOUSE": "COMPUTE_WH"})


def test_databricks_accepts_token_or_oauth_pair_but_not_half_a_pair() -> None:
    assert resolve_service(DATABRICKS, {"DATABRICKS_HOST": "h", "DATABRICKS_TOKEN": "t"}).is_cloud
    assert resolve_service(
        DATABRICKS, {"DATABRICKS_HOST": "h", "DATABRICKS_CLIENT_ID": "i", "DATABRICKS_CLIENT_SECRET": "s"}
    ).is_cloud
    with pytest.raises(ConfigError, match="DATABRICKS_CLIENT_ID \\+ DATABRICKS_CLIENT_SECRET"):
        resolve_service(DATABRICKS, {"DATABRICKS_HOST": "h", "DATABRICKS_CLIENT_ID": "i"})


def test_kafka_sasl_keys_come_together() -> None:
    with pytest.raises(ConfigError, match="KAFKA_SASL_PASSWORD"):
        resolve_service(KAFKA, {"KAFKA_BOOTSTRAP_SERVERS": "b:9092", "KAFKA_SASL_USERNAME": "u"})


def test_spark_remote_and_master_are_exclusive() -> None:
    assert resolve_service(SPARK, {"SPARK_REMOTE": "sc://127.0.0.1:15002"}).is_cloud
    with pytest.raises(ConfigError, match="both set"):
        resolve_service(SPARK, {"SPARK_REMOTE": "sc://x", "SPARK_MASTER": "spark://x:7077"})


def test_blank_values_count_as_unset() -> None:
    assert not resolve_service(SNOWFLAKE, {"SNOWFLAKE_ACCOUNT": "  ", "SNOWFLAKE_USER": ""}).is_cloud


def test_secrets_never_appear_in_repr_str_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret_value = SNOWFLAKE_PASSWORD_ENV["SNOWFLAKE_PASSWORD"]
    config = resolve_service(SNOWFLAKE, SNOWFLAKE_PASSWORD_ENV)
    settings_text = repr(config) + str(config) + repr(config.secret("SNOWFLAKE_PASSWORD"))
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("expert.test").info("settings: %s %r", config, config.values)
    with pytest.raises(KeyError) as err:
        config.get("SNOWFLAKE_PASSWORD")
    assert secret_value not in settings_text + caplog.text + str(err.value)
    assert "********" in settings_text


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "SNOWFLAKE_ACCOUNT=from-file\nSNOWFLAKE_USER=file-user\nSNOWFLAKE_PASSWORD=file-secret\n"
        "KAFKA_BOOTSTRAP_SERVERS=broker:9092\n"
    )
    settings = load_settings(environ={"SNOWFLAKE_ACCOUNT": "from-env"}, env_file=env_file)
    assert settings.snowflake.get("SNOWFLAKE_ACCOUNT") == "from-env"
    assert settings.snowflake.get("SNOWFLAKE_USER") == "file-user"
    assert settings.kafka.is_cloud
    assert settings.source == str(env_file)


def test_env_example_documents_every_key() -> None:
    from expert import PROJECT_ROOT
    from expert.runtime.config import SERVICES

    example = (PROJECT_ROOT / ".env.example").read_text()
    documented = {line.split("=", 1)[0].lstrip("# ").strip() for line in example.splitlines() if "=" in line}
    missing = [key for spec in SERVICES for key in spec.keys if key not in documented]
    assert not missing, f".env.example does not document {missing}"
