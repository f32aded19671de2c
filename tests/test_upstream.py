"""The simulated upstream systems of integration/01 and the bronze pull from them, without Spark."""

from __future__ import annotations

import pytest
import requests

from expert.upstream.bronze import fetch_payments
from expert.upstream.payments_api import PaymentsApi, decode_cursor, encode_cursor, retrying_session


def test_api_pages_with_cursor_and_retries_a_503() -> None:
    records = [{"seq": i, "payment_id": i, "amount": 1.0} for i in range(1, 26)]
    with PaymentsApi(records, flaky_page=1) as api, retrying_session() as http:
        pull = fetch_payments(api.url, 0, 10, http)
        assert [r["seq"] for r in pull.records] == list(range(1, 26))
        assert pull.page_sizes == [10, 10, 5]
        assert api.failures_served == 1 and api.requests_served == 4
        assert "cursor=" in pull.records[-1]["_source_file"], "pages after the first follow the next link"
        assert [r["seq"] for r in fetch_payments(api.url, 20, 10, http).records] == [21, 22, 23, 24, 25]
        assert fetch_payments(api.url, 25, 10, http).page_sizes == [0]
        with pytest.raises(requests.HTTPError):
            fetch_payments(api.url, 0, 0, http)
    assert decode_cursor(encode_cursor(20, 10)) == (20, 10)


def test_the_api_answers_404_off_its_path_and_400_for_a_bad_limit() -> None:
    api = PaymentsApi([{"seq": 1}])
    assert api.page({"limit": ["0"]})[0] == 400
    with api, requests.get(f"{api.url}/v2/nothing", timeout=10) as response:
        assert response.status_code == 404
