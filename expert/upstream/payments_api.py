"""The payment provider's API on 127.0.0.1: cursor pagination, `next` links, one transient 503.

Why a real HTTP server: a paginated API fails in ways a function call cannot show (a page answered
503 that the client must retry, not skip; a cursor the client must follow, not build). This
server speaks plain HTTP + JSON on an ephemeral loopback port, from `http.server` in a daemon
thread, so any HTTP client (the pattern uses `requests`) talks to it as to the real provider:

    GET /v1/payments?since=SEQ&limit=N   → {"data": [...], "next": "/v1/payments?cursor=…" | null}

Every record carries `seq`, the provider's change sequence number: a client that remembers the
highest `seq` it stored asks only for what is newer.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from expert.runtime.data import DirtReport, EcommerceWorld
from expert.upstream.operational_db import iso_utc

if TYPE_CHECKING:
    import requests


def encode_cursor(after_seq: int, limit: int) -> str:
    """An opaque cursor: clients follow it, never build or parse it (so the server may change it)."""
    return base64.urlsafe_b64encode(json.dumps({"after": after_seq, "limit": limit}).encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, int]:
    state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    return int(state["after"]), int(state["limit"])


@dataclass
class PaymentsApi:
    """`GET /v1/payments`, served until the `with` block ends; `flaky_page` answers 503 once."""

    records: list[dict[str, Any]]
    flaky_page: int | None = None
    max_limit: int = 1_000
    requests_served: int = 0
    failures_served: int = 0
    _failed_once: set[int] = field(default_factory=set)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the API is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def page(self, query: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """One response (status, body) for a query string: the API's whole logic, testable without HTTP."""
        if "cursor" in query:
            after, limit = decode_cursor(query["cursor"][0])
        else:
            after, limit = int(query.get("since", ["0"])[0]), int(query.get("limit", ["100"])[0])
        if not 1 <= limit <= self.max_limit:
            return 400, {"error": f"limit must be within 1..{self.max_limit}"}
        page_number = after // limit
        if page_number == self.flaky_page and page_number not in self._failed_once:
            self._failed_once.add(page_number)
            return 503, {"error": "temporarily unavailable, retry"}
        data = [r for r in self.records if r["seq"] > after][:limit]
        more = bool(data) and data[-1]["seq"] < self.records[-1]["seq"]
        next_link = f"/v1/payments?cursor={encode_cursor(data[-1]['seq'], limit)}" if more else None
        return 200, {"data": data, "next": next_link}

    def __enter__(self) -> PaymentsApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                status, body = (
                    api.page(parse_qs(parsed.query)) if parsed.path == "/v1/payments" else (404, {"error": "not found"})
                )
                api.requests_served += 1
                api.failures_served += status >= 500
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the pattern narrates what matters."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="payments-api", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def payment_records(world: EcommerceWorld) -> tuple[list[dict[str, Any]], DirtReport]:
    """The payments feed as the provider delivers it (redeliveries, null ids, late rows), each with `seq`."""
    import pandas as pd

    delivered, report = world.deliver("payments", "payment_id", "paid_ts")
    records = [
        {
            "seq": seq,
            "payment_id": None if pd.isna(r.payment_id) else int(r.payment_id),
            "order_id": int(r.order_id),
            "method": r.method,
            "amount": float(r.amount),
            "status": r.status,
            "paid_ts": iso_utc(r.paid_ts),
        }
        for seq, r in enumerate(delivered.itertuples(index=False), start=1)
    ]
    return records, report


def retrying_session(retries: int = 3) -> requests.Session:
    """A requests session that retries 429/5xx with backoff: a transient error must not lose a page."""
    import requests
    from requests.adapters import HTTPAdapter, Retry

    session = requests.Session()
    retry = Retry(total=retries, backoff_factor=0.05, status_forcelist=(429, 502, 503, 504), allowed_methods=("GET",))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session
