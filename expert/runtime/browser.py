"""Render a page in headless Chromium and return the DOM its scripts produced.

Why: "the dashboard renders" is a claim about a browser, not about an HTML string. Chromium runs
with every network feature off (the page must be self-contained) and a throwaway profile.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from expert.runtime.errors import ExpertError

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=15000",
    "--dump-dom",
)


@dataclass(frozen=True)
class Rendered:
    """The DOM after the page's scripts ran, and what the browser logged."""

    dom: str
    console_errors: tuple[str, ...]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def render(page: Path, *, timeout_s: float = 120) -> Rendered:
    """Load `page` in headless Chromium; raise a user error if Chromium is missing or fails."""
    binary = chromium()
    if binary is None:
        raise ExpertError("Chromium is not installed, so the page cannot be rendered", "run `make tools`")
    with tempfile.TemporaryDirectory(prefix="expert-chromium-") as profile:
        result = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    if result.returncode != 0:
        raise ExpertError(
            f"Chromium could not render {page} (exit {result.returncode}): {result.stderr.strip()[-300:]}",
            "check the file is a complete HTML page",
        )
    errors = tuple(
        line
        for line in result.stderr.splitlines()
        if ("CONSOLE" in line and "error" in line.lower()) or "Uncaught" in line
    )
    return Rendered(result.stdout, errors)
