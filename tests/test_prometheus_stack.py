"""The real monitoring stack on loopback (expert/runtime/prometheus.py): start, alert, deliver, stop.

The tests that start Prometheus and Alertmanager skip with a clear reason without `make tools`
(CI installs them and sets EXPERT_REQUIRE_TOOLS=1, which turns the skip into a failure).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import require_tool
from expert.lakehouse.alert_replay import delivered, prometheus_alerts, replay, transitions
from expert.lakehouse.monitoring import WebhookReceiver
from expert.runtime.daemon import port_accepts
from expert.runtime.errors import ExpertError
from expert.runtime.prometheus import (
    ExpositionServer,
    alertmanager,
    parse_duration,
    prometheus,
    scaled_rules,
    seconds_to_duration,
    wait_for,
)

RULES = """\
groups:
  - name: test
    interval: 5m
    rules:
      - alert: High
        expr: m > 1
        for: 5m
        labels: {severity: page}
        annotations: {summary: "m on {{ $labels.t }}"}
"""


def gauge(value: float) -> bytes:
    return f'# TYPE m gauge\nm{{t="x"}} {value}\n'.encode()


@pytest.fixture
def stack_binaries() -> None:
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")


def test_scaled_rules_divide_every_duration(tmp_path: Path) -> None:
    source = tmp_path / "rules.yml"
    source.write_text(RULES)
    scaled = scaled_rules(source, tmp_path / "scaled.yml", 150).read_text()
    assert "interval: 2s" in scaled and "for: 2s" in scaled and "expr: m > 1" in scaled
    assert seconds_to_duration(0.25) == "250ms" and seconds_to_duration(2) == "2s"
    assert parse_duration("1h") == 3600
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        parse_duration("5 minutes")


def test_a_missing_binary_names_itself_and_make_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with (
        pytest.raises(ExpertError) as missing,
        prometheus(tmp_path, rule_files=[], scrape_target="127.0.0.1:1", alertmanager_target="127.0.0.1:2"),
    ):
        pass
    assert "'prometheus'" in missing.value.message and "make tools" in missing.value.fix
    with pytest.raises(ExpertError) as missing, alertmanager(tmp_path, "http://127.0.0.1:1/"):
        pass
    assert "'prometheus-alertmanager'" in missing.value.message and "make tools" in missing.value.fix


def test_a_taken_port_is_refused_with_its_number(stack_binaries: None, tmp_path: Path, busy_port: int) -> None:
    with (
        pytest.raises(ExpertError, match=f"127.0.0.1:{busy_port}: the port is already in use"),
        alertmanager(tmp_path, "http://127.0.0.1:1/", port=busy_port),
    ):
        pass


def test_prometheus_fires_and_alertmanager_delivers_then_both_stop(stack_binaries: None, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    scaled = scaled_rules(rules, tmp_path / "scaled.yml", 300)
    with WebhookReceiver().running() as receiver, ExpositionServer().running() as target:  # noqa: SIM117
        with (
            alertmanager(tmp_path / "am", receiver.url) as manager,
            prometheus(
                tmp_path / "prom",
                rule_files=[scaled],
                scrape_target=target.target,
                alertmanager_target=manager.target,
                evaluation_interval="1s",
            ) as server,
        ):
            assert server.url.startswith("http://127.0.0.1:") and manager.url.startswith("http://127.0.0.1:")
            result = replay(server, target, [gauge(v) for v in (0, 2, 2, 2, 0)], scrape_interval=0.25)
            changes = transitions(result.states, [0, 300, 600, 900, 1200])
            assert [(at, state) for at, _, state in changes] == [(300, "pending"), (600, "firing"), (1200, "resolved")]
            assert wait_for(lambda: {d.status for d in delivered(receiver.received)} == {"firing", "resolved"}, 30)
            assert prometheus_alerts(server) == []
            ports = (server.port, manager.port)
    assert not any(port_accepts(port) for port in ports), "both servers stopped with the block"
    assert all(d.key == ("High", "") for d in delivered(receiver.received))
