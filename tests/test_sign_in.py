"""Sign-in checks evaluated locally: the network policy's decision, and key-pair auth as Snowflake verifies it."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from snowflake.connector.auth import AuthByKeyPair

from expert.runtime.config import SNOWFLAKE, resolve_service
from expert.runtime.sign_in import (
    connector_token,
    create_key_pair,
    login_with_key_pair,
    network_decision,
    registered_fingerprint,
    verify_as_snowflake,
)
from expert.runtime.snowflake_ddl import NetworkPolicy

ACCOUNT = "MYORG-SHOP"


def test_network_decisions() -> None:
    policy = NetworkPolicy(name="p", allowed_ip_list=["10.0.0.0/8"], blocked_ip_list=["10.1.2.3/32"])
    assert network_decision(policy, "10.9.9.9") == "allowed"
    assert network_decision(policy, "10.1.2.3") == "denied (blocked list)"
    assert network_decision(policy, "192.168.1.1") == "denied (not in allowed list)"


def test_key_pair_token_is_verified_like_snowflake_does(workdir: Path) -> None:
    pair, passphrase = create_key_pair(workdir / "keys")
    assert (pair.private_key_file.stat().st_mode & 0o777) == 0o600
    key = serialization.load_pem_private_key(pair.private_key_file.read_bytes(), password=passphrase)
    assert registered_fingerprint(pair.public_key_body) == AuthByKeyPair.calculate_public_key_fingerprint(key)
    token = connector_token(pair.private_key_file, passphrase, ACCOUNT, "SVC_LOADER")
    assert verify_as_snowflake(token, pair.public_key_body, ACCOUNT, "SVC_LOADER")["sub"] == f"{ACCOUNT}.SVC_LOADER"
    with pytest.raises(jwt.InvalidIssuerError):
        verify_as_snowflake(token, pair.public_key_body, ACCOUNT, "SOMEONE_ELSE")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pair.private_key_file.read_bytes(), password=None)


def test_an_existing_key_file_is_replaced_owner_only(workdir: Path) -> None:
    (workdir / "keys").mkdir()
    stale = workdir / "keys" / "rsa_key.p8"
    stale.write_text("old")
    stale.chmod(0o644)
    pair, _ = create_key_pair(workdir / "keys")
    assert pair.private_key_file == stale and (stale.stat().st_mode & 0o777) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in stale.read_bytes()


def test_login_refuses_a_key_that_was_not_registered(workdir: Path) -> None:
    login = login_with_key_pair(workdir / "keys", ACCOUNT, "SVC_LOADER")
    assert login.claims["iss"].startswith(f"{ACCOUNT}.SVC_LOADER.SHA256:") and login.other_key_refused
    assert login.passphrase.decode() not in repr(login)
    config = resolve_service(SNOWFLAKE, login.env(ACCOUNT, "SVC_LOADER"))
    assert config.is_cloud and config.get("SNOWFLAKE_PRIVATE_KEY_FILE") == str(login.pair.private_key_file)
