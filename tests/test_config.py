"""Configuration: local unless complete, half-set is an error naming keys, secrets never shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from expert.runtime.config import (
    DATABRICKS,
    KAFKA,
    SNOWFLAKE,
    SPARK,
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
    secret = config.secret("SNOWFLAKE_PASSWORD")
    assert isinstance(secret, SecretStr) and secret.get_secret_value() == "pa55-w0rd-never-shown"


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
    assert settings.snowflake.source == f".env ({env_file}) and the environment"
    assert settings.kafka.source == f".env ({env_file})"


def test_env_example_documents_every_key() -> None:
    from expert import PROJECT_ROOT
    from expert.runtime.config import SERVICES

    example = (PROJECT_ROOT / ".env.example").read_text()
    documented = {line.split("=", 1)[0].lstrip("# ").strip() for line in example.splitlines() if "=" in line}
    missing = [key for spec in SERVICES for key in spec.keys if key not in documented]
    assert not missing, f".env.example does not document {missing}"


# --- No silent fallback: what `.env` may hold (issue 17.4) -----------------------------------


@pytest.mark.parametrize(
    ("line", "named", "suggested"),
    [
        ("SNOWFLAKE_ACOUNT=acct", "SNOWFLAKE_ACOUNT", "SNOWFLAKE_ACCOUNT"),
        ("snowflake_account=acct", "snowflake_account", "SNOWFLAKE_ACCOUNT"),
        ("Databricks_Host=https://h", "Databricks_Host", "DATABRICKS_HOST"),
        ("KAFKA_BOOTSTRAP=b:9092", "KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP_SERVERS"),
        ("LAKEHOUSE_ROT=s3a://b/p", "LAKEHOUSE_ROT", "LAKEHOUSE_ROOT"),
        ("ALERT_WEBHOOK=https://hooks.example.com/x", "ALERT_WEBHOOK", "ALERT_WEBHOOK_URL"),
        ("MLFLOW_TRACKING_URL=http://h:5000", "MLFLOW_TRACKING_URL", "MLFLOW_TRACKING_URI"),
    ],
)
def test_an_unknown_or_lower_case_key_in_dotenv_is_an_error_with_the_nearest_key(
    tmp_path: Path, line: str, named: str, suggested: str
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"# a comment\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, env_file=env_file)
    assert named in err.value.message and str(env_file) in err.value.message
    assert suggested in err.value.message + err.value.fix
    assert err.value.exit_code == 2


def test_another_tools_variable_in_dotenv_is_an_error_saying_where_it_belongs(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SPARK_HOME=/opt/spark\n")
    with pytest.raises(ConfigError, match="SPARK_HOME is read by another tool") as err:
        load_settings(environ={}, env_file=env_file)
    assert "export SPARK_HOME in your shell" in err.value.fix


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('SNOWFLAKE_PASSWORD="unclosed\nSNOWFLAKE_ACCOUNT=acct\nSNOWFLAKE_USER=me\n', 1),
        ("SNOWFLAKE_ACCOUNT=acct\nthis is not a setting\n", 2),
    ],
)
def test_a_line_dotenv_cannot_parse_is_an_error_naming_the_line(tmp_path: Path, text: str, line: int) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(text)
    with pytest.raises(ConfigError, match=f"line {line}: python-dotenv cannot parse"):
        load_settings(environ={}, env_file=env_file)


def test_unknown_keys_in_the_environment_are_one_warning_line_and_tool_keys_are_silent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from expert.runtime import config

    monkeypatch.setattr(config, "_warned", set())
    for key, value in {
        "SNOWFLAKE_WAREHOUS": "WH",
        "kafka_bootstrap_servers": "b:9092",
        "SPARK_HOME": "/opt/spark",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SNOWFLAKE_HOME": "/tmp/sf",
        "KAFKA_HEAP_OPTS": "-Xmx1g",
        "DATABRICKS_AUTH_TYPE": "databricks-cli",
        "MLFLOW_TRACKING_TOKEN": "t",
        "DATABRICKS_TOKN": "t",
    }.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    load_settings()
    err = capsys.readouterr().err
    assert settings.snowflake.mode == "local" and settings.kafka.mode == "local"
    lines = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1, err
    assert "SNOWFLAKE_WAREHOUS (did you mean SNOWFLAKE_WAREHOUSE?)" in lines[0]
    assert "kafka_bootstrap_servers (did you mean KAFKA_BOOTSTRAP_SERVERS?)" in lines[0]
    assert "DATABRICKS_TOKN (did you mean DATABRICKS_TOKEN?)" in lines[0]
    for silent in (
        "SPARK_HOME",
        "SPARK_LOCAL_IP",
        "SNOWFLAKE_HOME",
        "KAFKA_HEAP_OPTS",
        "AUTH_TYPE",
        "MLFLOW_TRACKING_TOKEN",
    ):
        assert silent not in err


# --- Numbers and ports are checked where they are read (issue 17.3) ---------------------------


@pytest.mark.parametrize(
    ("env", "key"),
    [
        (
            {"DATABRICKS_HOST": "https://h", "DATABRICKS_TOKEN": "t", "DATABRICKS_RETRY_TIMEOUT": "0"},
            "DATABRICKS_RETRY_TIMEOUT",
        ),
        (
            {"DATABRICKS_HOST": "https://h", "DATABRICKS_TOKEN": "t", "DATABRICKS_RETRY_TIMEOUT": "ten"},
            "DATABRICKS_RETRY_TIMEOUT",
        ),
        ({**SNOWFLAKE_PASSWORD_ENV, "SNOWFLAKE_PORT": "70000"}, "SNOWFLAKE_PORT"),
        ({**SNOWFLAKE_PASSWORD_ENV, "SNOWFLAKE_PORT": "0"}, "SNOWFLAKE_PORT"),
        ({**SNOWFLAKE_PASSWORD_ENV, "SNOWFLAKE_LOGIN_TIMEOUT": "2.5"}, "SNOWFLAKE_LOGIN_TIMEOUT"),
        ({"SPARK_REMOTE": "sc://127.0.0.1:99999"}, "SPARK_REMOTE"),
        ({"SPARK_MASTER": "spark://127.0.0.1:port"}, "SPARK_MASTER"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:0"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"MLFLOW_TRACKING_URI": "http://h:123456"}, "MLFLOW_TRACKING_URI"),
    ],
)
def test_a_bad_number_or_port_is_a_config_error_naming_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env, env_file=Path("/nonexistent/.env"))
    assert key in err.value.message and err.value.fix


def test_numbers_in_range_are_read_as_numbers() -> None:
    config = resolve_service(
        SNOWFLAKE, {**SNOWFLAKE_PASSWORD_ENV, "SNOWFLAKE_PORT": "8443", "SNOWFLAKE_LOGIN_TIMEOUT": "7"}
    )
    assert config.number("SNOWFLAKE_PORT", 443) == 8443
    assert config.number("SNOWFLAKE_LOGIN_TIMEOUT", 20) == 7
    assert resolve_service(SNOWFLAKE, SNOWFLAKE_PASSWORD_ENV).number("SNOWFLAKE_LOGIN_TIMEOUT", 20) == 20


# --- Credentials the standard way: the platforms' own files (issue 16.3) ----------------------

DATABRICKSCFG = """\
[DEFAULT]
host = https://default-workspace.cloud.databricks.com
token = dapi-default-token-never-shown

[dev]
host = https://dev-workspace.cloud.databricks.com
client_id = sp-client
client_secret = dev-oauth-secret-never-shown
"""

CONNECTIONS_TOML = """\
[dev]
account = "myorg-dev"
user = "LEARNER"
password = "toml-password-never-shown"
warehouse = "DEV_WH"

[prod]
account = "myorg-prod"
user = "SVC"
authenticator = "SNOWFLAKE_JWT"
private_key_file = "/keys/prod.p8"
"""


@pytest.fixture
def fake_home(tmp_path: Path) -> Path:
    """A home directory with a ~/.databrickscfg and a ~/.snowflake/connections.toml (mode 0600), whose
    config.toml names the default connection."""
    home = tmp_path / "home"
    (home / ".snowflake").mkdir(parents=True)
    (home / ".databrickscfg").write_text(DATABRICKSCFG)
    for name, text in (("connections.toml", CONNECTIONS_TOML), ("config.toml", 'default_connection_name = "dev"\n')):
        (home / ".snowflake" / name).write_text(text)
        (home / ".snowflake" / name).chmod(0o600)
    return home


def test_a_databrickscfg_profile_is_used_when_dotenv_has_no_databricks_key(fake_home: Path) -> None:
    settings = load_settings(environ={"HOME": str(fake_home)}, env_file=Path("/nonexistent/.env"))
    databricks = settings.databricks
    assert databricks.is_cloud and databricks.profile == "DEFAULT"
    assert databricks.source == f"Databricks config profile [DEFAULT] ({fake_home / '.databrickscfg'})"
    assert databricks.endpoint == "https://default-workspace.cloud.databricks.com"
    assert "dapi-default-token-never-shown" not in repr(databricks) + repr(settings)

    chosen = load_settings(
        environ={"HOME": str(fake_home), "DATABRICKS_CONFIG_PROFILE": "dev"}, env_file=Path("/nonexistent/.env")
    ).databricks
    assert chosen.profile == "dev" and chosen.endpoint == "https://dev-workspace.cloud.databricks.com"


def test_the_sdk_builds_its_client_from_the_profile(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own `Config` reads the profile (host and credentials): nothing is copied by hand."""
    from databricks.sdk.core import Config

    from expert.runtime.databricks import workspace_client

    monkeypatch.setattr(Config, "_resolve_host_metadata", lambda self: None)  # no network in this test
    config = load_settings(environ={"HOME": str(fake_home)}, env_file=Path("/nonexistent/.env")).databricks
    client = workspace_client(config)
    assert client.config.host == "https://default-workspace.cloud.databricks.com"
    assert client.config.token == "dapi-default-token-never-shown"
    assert client.config.retry_timeout_seconds == 10


def test_dotenv_keys_win_over_the_databrickscfg_profile(fake_home: Path) -> None:
    env = {"HOME": str(fake_home), "DATABRICKS_HOST": "https://from-env.cloud.databricks.com", "DATABRICKS_TOKEN": "t"}
    databricks = load_settings(environ=env, env_file=Path("/nonexistent/.env")).databricks
    assert databricks.profile == "" and databricks.source == "environment"
    assert databricks.endpoint == "https://from-env.cloud.databricks.com"


def test_a_missing_databricks_profile_is_an_error_listing_the_ones_there(fake_home: Path) -> None:
    env = {"HOME": str(fake_home), "DATABRICKS_CONFIG_PROFILE": "staging"}
    with pytest.raises(ConfigError, match=r"no profile \[staging\] \(it has: DEFAULT, dev\)"):
        load_settings(environ=env, env_file=Path("/nonexistent/.env"))


def test_a_connections_toml_connection_is_used_when_dotenv_has_no_snowflake_key(fake_home: Path) -> None:
    from expert.runtime.snowflake import _cloud_kwargs

    settings = load_settings(environ={"HOME": str(fake_home)}, env_file=Path("/nonexistent/.env"))
    snowflake = settings.snowflake
    toml = fake_home / ".snowflake" / "connections.toml"
    assert snowflake.is_cloud and snowflake.profile == "dev"
    assert snowflake.source == f"Snowflake connections.toml [dev] ({toml})"
    assert snowflake.get("SNOWFLAKE_ACCOUNT") == "myorg-dev" and snowflake.get("SNOWFLAKE_WAREHOUSE") == "DEV_WH"
    assert snowflake.endpoint == "https://myorg-dev.snowflakecomputing.com"
    assert "toml-password-never-shown" not in repr(snowflake)
    kwargs = _cloud_kwargs(snowflake, "EXPERT", "PUBLIC")
    assert kwargs["connection_name"] == "dev" and kwargs["connections_file_path"] == toml
    assert "password" not in kwargs  # the connector reads the connection's credentials itself

    prod = load_settings(
        environ={"HOME": str(fake_home), "SNOWFLAKE_DEFAULT_CONNECTION_NAME": "prod"},
        env_file=Path("/nonexistent/.env"),
    ).snowflake
    assert prod.profile == "prod" and prod.get("SNOWFLAKE_USER") == "SVC"


def test_snowflake_home_moves_the_connections_file(tmp_path: Path) -> None:
    snowflake_home = tmp_path / "sf"
    snowflake_home.mkdir()
    (snowflake_home / "connections.toml").write_text('[default]\naccount = "acct-from-home"\nuser = "U"\n')
    (snowflake_home / "connections.toml").chmod(0o600)
    env = {"HOME": str(tmp_path / "nobody"), "SNOWFLAKE_HOME": str(snowflake_home)}
    snowflake = load_settings(environ=env, env_file=Path("/nonexistent/.env")).snowflake
    assert snowflake.profile == "default" and snowflake.get("SNOWFLAKE_ACCOUNT") == "acct-from-home"


def test_a_connections_file_others_can_write_is_refused(fake_home: Path) -> None:
    toml = fake_home / ".snowflake" / "connections.toml"
    toml.chmod(0o666)
    with pytest.raises(ConfigError, match="chmod 0600") as err:
        load_settings(environ={"HOME": str(fake_home)}, env_file=Path("/nonexistent/.env"))
    assert str(toml) in err.value.message


def test_no_platform_file_means_local(tmp_path: Path) -> None:
    settings = load_settings(environ={"HOME": str(tmp_path)}, env_file=Path("/nonexistent/.env"))
    assert not settings.snowflake.is_cloud and not settings.databricks.is_cloud


def test_what_pyspark_sets_in_the_environment_is_not_warned_about(  # type: ignore[no-untyped-def]
    spark, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyspark puts SPARK_AUTH_SOCKET_TIMEOUT and SPARK_BUFFER_SIZE in os.environ when its context starts:
    a pattern loading its settings after Spark started must not call them unknown."""
    from expert.runtime import config

    monkeypatch.setattr(config, "_warned", set())
    spark_keys = sorted(k for k in os.environ if k.startswith("SPARK_"))
    assert "SPARK_AUTH_SOCKET_TIMEOUT" in spark_keys, spark_keys
    config.warn_about_environment({k: os.environ[k] for k in spark_keys})
    assert capsys.readouterr().err == ""
