"""What Snowflake checks when someone signs in, evaluated on one machine: where from, and with what key.

Why: the first two layers of an account's security run at login. A network policy decides from
which addresses a login may come: `network_decision` applies its rules (the blocked list wins,
then the address must be in an allowed range). A service user should sign in with a key pair,
not a password. The private key stays with
the service (encrypted, readable by its owner only); Snowflake stores the public key and shows
its fingerprint. At login the connector signs a short-lived JWT whose issuer names that
fingerprint; Snowflake verifies the signature with the registered public key. This module makes
the key, computes the fingerprint Snowflake shows, builds the token with the connector's own code
(`AuthByKeyPair`), and performs Snowflake's side of the check with PyJWT, so the whole exchange can
be proven without an account.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from snowflake.connector.auth import AuthByKeyPair

from expert.runtime.snowflake_ddl import NetworkPolicy

NETWORK_CHECK = ("Snowflake's network check at login", "each sample address evaluated against the policies' lists")
"""What `network_decision` stands in for, and how (for `run.stand_in`)."""
KEY_PAIR_CHECK = (
    "Snowflake's key-pair login check",
    "the connector's own JWT verified with PyJWT against the registered public key, as the service does",
)
"""What `verify_as_snowflake` stands in for, and how (for `run.stand_in`)."""


def network_decision(policy: NetworkPolicy, source: str) -> str:
    """What Snowflake does with a login from `source`: blocked wins, then it must be in an allowed range."""
    address = ipaddress.ip_address(source)
    if any(address in ipaddress.ip_network(c, strict=False) for c in policy.blocked_ip_list):
        return "denied (blocked list)"
    if any(address in ipaddress.ip_network(c, strict=False) for c in policy.allowed_ip_list):
        return "allowed"
    return "denied (not in allowed list)"


@dataclass(frozen=True)
class KeyPair:
    private_key_file: Path
    public_key_body: str
    """The DER public key, base64: what `ALTER USER ... SET RSA_PUBLIC_KEY` registers."""
    fingerprint: str


def create_key_pair(directory: Path, name: str = "rsa_key.p8") -> tuple[KeyPair, bytes]:
    """An RSA key pair: an encrypted PKCS#8 file created with mode 0600, and the public key body.

    Returns the pair and the passphrase, which lives only in memory here (in production: a secret
    manager, handed to the connector as SNOWFLAKE_PRIVATE_KEY_FILE_PWD). It is never printed.
    """
    passphrase = secrets.token_urlsafe(24).encode()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase)
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(pem)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    body = base64.b64encode(der).decode()
    return KeyPair(path, body, registered_fingerprint(body)), passphrase


def registered_fingerprint(public_key_body: str) -> str:
    """What Snowflake shows as RSA_PUBLIC_KEY_FP: SHA-256 of the DER public key, base64."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(public_key_body)).digest()).decode()


def connector_token(private_key_file: Path, passphrase: bytes, account: str, user: str) -> str:
    """The JWT snowflake-connector-python sends for key-pair auth, built by the connector's own code."""
    key = serialization.load_pem_private_key(private_key_file.read_bytes(), password=passphrase)
    return AuthByKeyPair(private_key=key).prepare(account=account, user=user)


def verify_as_snowflake(token: str, public_key_body: str, account: str, user: str) -> dict[str, Any]:
    """What the service does with the token: verify the signature against the registered key and
    require the issuer to name the key's fingerprint. Raises `jwt.InvalidTokenError` if either fails."""
    public_key = serialization.load_der_public_key(base64.b64decode(public_key_body))
    claims: dict[str, Any] = jwt.decode(token, public_key, algorithms=["RS256"])  # type: ignore[arg-type]
    expected_issuer = f"{account.upper()}.{user}.{registered_fingerprint(public_key_body)}"
    if claims["iss"] != expected_issuer or claims["sub"] != f"{account.upper()}.{user}":
        raise jwt.InvalidIssuerError(f"issuer {claims['iss']} does not match the registered key")
    return claims


@dataclass(frozen=True)
class KeyPairLogin:
    """A key pair registered for a user, the claims of its login token, and whether another key was refused."""

    pair: KeyPair
    passphrase: bytes = field(repr=False)
    claims: dict[str, Any]
    other_key_refused: bool

    def env(self, account: str, user: str) -> dict[str, str]:
        """The .env keys a service signing in with this key sets (the passphrase among them: keep it secret)."""
        return {
            "SNOWFLAKE_ACCOUNT": account,
            "SNOWFLAKE_USER": user,
            "SNOWFLAKE_PRIVATE_KEY_FILE": str(self.pair.private_key_file),
            "SNOWFLAKE_PRIVATE_KEY_FILE_PWD": self.passphrase.decode(),
        }


def login_with_key_pair(directory: Path, account: str, user: str) -> KeyPairLogin:
    """Make `user` a key pair, sign in with it as the connector does, then try a key that was never registered."""
    pair, passphrase = create_key_pair(directory, f"{user.lower()}_rsa_key.p8")
    claims = verify_as_snowflake(connector_token(pair.private_key_file, passphrase, account, user), pair.public_key_body,
                                 account, user)  # fmt: skip
    other, other_passphrase = create_key_pair(directory / "unregistered", f"{user.lower()}_rsa_key.p8")
    try:
        verify_as_snowflake(connector_token(other.private_key_file, other_passphrase, account, user),
                            pair.public_key_body, account, user)  # fmt: skip
        refused = False
    except jwt.InvalidTokenError:
        refused = True
    return KeyPairLogin(pair, passphrase, claims, refused)
