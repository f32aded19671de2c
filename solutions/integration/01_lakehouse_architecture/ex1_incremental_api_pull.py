"""Exercise integration/01.1 · Pull a paginated API incrementally: follow `next`, keep a watermark.

The payments source of integration/01 is the provider's HTTP API, pulled into bronze on a schedule:

    GET {base_url}/v1/payments?since=SEQ&limit=N  →  {"data": [...], "next": "/v1/payments?cursor=…" | null}

Every record carries `seq`, the provider's change sequence number. It increases, but it is NOT
contiguous: the provider numbers the changes of all its merchants, so yours have gaps. The
cursor in `next` is opaque: follow it until it is null, never build or parse one. The session you
are given retries a 503 (the API answers one page with 503 once). Bronze keeps what the provider
sent, redelivered payments and payments without an id included: silver deduplicates, not you.

Your task: return every record with seq > `watermark`, and the new watermark, so that
- each record is returned exactly once, in seq order, with every field the API sent, plus
  `_source_file`: the URL of the page it came from (the lineage every bronze row carries),
- the new watermark is the highest seq returned, or `watermark` itself when nothing is new,
- a rerun with the returned watermark reads nothing, and records the provider adds later are
  read by the next pull, exactly once.

Check it: expert check integration/01.1
"""

from typing import Any
from urllib.parse import urljoin

import requests


def pull_payments(
    base_url: str, watermark: int, page_size: int, session: requests.Session
) -> tuple[list[dict[str, Any]], int]:
    """Every payment record newer than `watermark`, page by page, and the watermark to store for next time."""
    records: list[dict[str, Any]] = []
    url: str | None = f"{base_url}/v1/payments?since={watermark}&limit={page_size}"
    while url is not None:
        response = session.get(url, timeout=10)
        response.raise_for_status()
        body = response.json()
        records += [{**record, "_source_file": url} for record in body["data"]]
        url = urljoin(base_url, body["next"]) if body["next"] else None
    return records, max((record["seq"] for record in records), default=watermark)
