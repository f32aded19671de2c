"""What goes into SQL and config is quoted or refused; key files are private from birth (issue 17.7)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from expert.lakehouse.delta_ops import delta_table
from expert.lakehouse.layout import MedallionLayout
from expert.runtime.config import SNOWFLAKE, resolve_service
from expert.runtime.errors import ConfigError
from expert.runtime.quoting import jaas_quoted
from expert.runtime.snowflake import cloud_names
from expert.runtime.workdir import write_private_file

LOGIN = {"SNOWFLAKE_ACCOUNT": "acct", "SNOWFLAKE_USER": "LEARNER", "SNOWFLAKE_PASSWORD": "pw"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SNOWFLAKE_DATABASE", "EXPERT; DROP DATABASE PROD"),
        ("SNOWFLAKE_DATABASE", "OTHER.PUBLIC"),
        ("SNOWFLAKE_SCHEMA", 'PUBLIC"--'),
        ("SNOWFLAKE_SCHEMA", "my schema"),
    ],
)
def test_configured_database_and_schema_must_be_plain_identifiers(key: str, value: str) -> None:
    config = resolve_service(SNOWFLAKE, {**LOGIN, key: value})
    with pytest.raises(ConfigError) as err:
        cloud_names(config, "EXPERT", "PUBLIC")
    assert key in err.value.message + err.value.fix and repr(value) in err.value.message


def test_plain_identifiers_pass_unchanged() -> None:
    config = resolve_service(SNOWFLAKE, {**LOGIN, "SNOWFLAKE_DATABASE": "Learner_DB$1"})
    assert cloud_names(config, "EXPERT", "PUBLIC") == ("Learner_DB$1", "PUBLIC")


def test_a_delta_path_is_one_quoted_identifier_whatever_it_holds(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A backtick in a path is doubled, so Spark reads the whole path back as the table's location."""
    location = str(tmp_path / "odd`name` --table")
    assert delta_table("/a/b") == "delta.`/a/b`"
    assert delta_table(location) == "delta.`" + location.replace("`", "``") + "`"
    spark.range(3).write.format("delta").save(location)
    assert spark.sql(f"SELECT COUNT(*) AS n FROM {delta_table(location)}").first()["n"] == 3
    assert MedallionLayout(str(tmp_path / "lake")).sql("silver_events").startswith("delta.`")


@pytest.mark.parametrize("password", ['pa"ss', "back\\slash", 'both\\"', "plain"])
def test_jaas_values_are_escaped_for_kafkas_tokenizer(password: str) -> None:
    quoted = jaas_quoted(password)
    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    # Undo StreamTokenizer's escapes (\\ and \") and the original comes back; no bare quote is left.
    assert inner.replace('\\"', "\0").count('"') == 0
    assert inner.replace("\\\\", "\1").replace('\\"', '"').replace("\1", "\\") == password


def test_a_line_break_cannot_be_carried_by_a_jaas_value() -> None:
    with pytest.raises(ConfigError, match="KAFKA_SASL_PASSWORD contains a line break"):
        jaas_quoted("pw\nextra", key="KAFKA_SASL_PASSWORD")


def test_a_private_file_is_0600_from_creation_even_with_an_open_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        path = write_private_file(tmp_path / "rsa_key.p8", b"-----BEGIN PRIVATE KEY-----\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN")
