"""Keep credentials out of everything a run prints or writes.

Why: a connection error that echoes `SPARK_REMOTE=sc://host:15002/;token=…` puts the token in a
terminal's scroll-back, a CI log and a bug report. Settings that are secrets are `SecretStr`
(`expert.runtime.config`), but a secret also travels inside strings: a URL with user-info or a
`token=` parameter, a library's exception text, a traceback. So every credential the settings hold
is registered here when the settings are read, and the harness and the CLI write their output
through `scrubbed_output()`, which replaces any registered value (and any URL user-info or
`token=`/`password=` parameter it sees) with `********` before it reaches the terminal.
`redact_url` is how messages name an endpoint: scheme, host and port, nothing else.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator
from typing import TextIO
from urllib.parse import urlsplit

MASK = "********"
MIN_SECRET_LENGTH = 4
"""Shorter values are not scrubbed from text (masking every "abc" would garble the output)."""
WHOLE_WORD_BELOW = 12
"""Values shorter than this are masked only where they stand as a whole word."""

_CREDENTIAL_PARAM = re.compile(
    r"(?i)\b(token|password|passwd|pwd|secret|client_secret|api_key|apikey|sig)=([^;&\s\"']+)"
)
_USER_INFO = re.compile(r"(?i)\b((?!abfss?://|wasbs?://)[a-z][a-z0-9+.-]*://)[^/\s@\"']+@")
"""`scheme://user-info@`: a credential, except in Azure storage URIs, where it names the container."""

_registered: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a credential so `scrub` masks it wherever it appears later in this process."""
    value = value.strip()
    if len(value) >= MIN_SECRET_LENGTH:
        _registered.add(value)


def carries_credential(value: str) -> bool:
    """True for a URL with user-info (`user:pass@`) or a `token=`/`password=`-style parameter."""
    return bool(_USER_INFO.search(value) or _CREDENTIAL_PARAM.search(value))


def scrub(text: str) -> str:
    """`text` with every registered secret, URL user-info and credential parameter masked."""
    for secret in sorted(_registered, key=len, reverse=True):
        if secret not in text:
            continue
        if len(secret) >= WHOLE_WORD_BELOW:
            text = text.replace(secret, MASK)
        else:  # a short value is masked only as a whole word: "snow" is not hidden inside "snowflake"
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
    text = _USER_INFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _CREDENTIAL_PARAM.sub(lambda m: f"{m.group(1)}={MASK}", text)


def redact_url(url: str) -> str:
    """Name an endpoint without its credentials: `scheme://host:port` (path, query and user-info dropped).

    A value that is not a URL (`databricks`, `host:9092`) comes back scrubbed but otherwise whole.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return scrub(url)
    if not parts.scheme or not host:
        return scrub(url)
    netloc = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{netloc}" + (f":{port}" if port else "")


class ScrubbingStream(io.TextIOBase):
    """A text stream that masks secrets in everything written through it."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(scrub(text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")


@contextlib.contextmanager
def scrubbed_output() -> Iterator[None]:
    """Send this process's stdout and stderr through `ScrubbingStream` for the block."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = ScrubbingStream(saved[0]), ScrubbingStream(saved[1])  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
