"""A scenario's metrics replayed to a real Prometheus, one simulated evaluation per rule evaluation.

Why: the monitoring scenario runs on a simulated clock (a pipeline run every 10 simulated minutes,
rules every 5) so an outage takes seconds, but Prometheus evaluates on its own wall clock. The
scenario records what `/metrics` exposed at each simulated evaluation; this module serves those
expositions to Prometheus in order, switching to the next one right after each rule evaluation, so
every recorded state is scraped and then evaluated exactly once. With the rule file's durations
divided by the same factor (`runtime.prometheus.scaled_rules`), `for: 5m` means one evaluation,
as in the simulation. Prometheus' own alert states are read after each evaluation, and what
Alertmanager delivered is read from the webhook receiver's payloads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from expert.lakehouse.monitoring import Transition, alertmanager_payload, deliver
from expert.runtime.errors import ExpertError
from expert.runtime.prometheus import ExpositionServer, Server, target_up, wait_for

ALERT_KEYS = ("source", "table", "warehouse")
"""The label that says what an alert is about, by rule family."""


def alert_key(labels: Mapping[str, str]) -> tuple[str, str]:
    """(alert name, what it is about): how alerts from different producers are compared."""
    subject = next((labels[k] for k in ALERT_KEYS if k in labels), "")
    return labels.get("alertname", ""), subject


@dataclass(frozen=True)
class PrometheusAlert:
    """One alert as Prometheus' API reports it after an evaluation."""

    key: tuple[str, str]
    state: str
    active_at: float


@dataclass(frozen=True)
class Delivered:
    """One alert in one Alertmanager webhook payload."""

    key: tuple[str, str]
    status: str
    starts_at: float
    ends_at: float | None


def _epoch(text: str) -> float:
    return pd.Timestamp(text).timestamp()


def delivered(payloads: Iterable[Mapping[str, Any]]) -> list[Delivered]:
    """Every (alert, status) the webhook received, once, in the order it first arrived.

    Alertmanager repeats a group's alerts in each notification of the group; one alert and status
    is one delivery here.
    """
    seen: dict[tuple[tuple[str, str], str], Delivered] = {}
    for payload in payloads:
        for alert in payload.get("alerts", ()):
            key, status = alert_key(alert["labels"]), alert["status"]
            ends = alert.get("endsAt", "")
            seen.setdefault(
                (key, status),
                Delivered(key, status, _epoch(alert["startsAt"]), _epoch(ends) if status == "resolved" else None),
            )
    return list(seen.values())


def prometheus_alerts(server: Server) -> list[PrometheusAlert]:
    """The pending and firing alerts Prometheus holds now."""
    return [
        PrometheusAlert(alert_key(a["labels"]), a["state"], _epoch(a["activeAt"]))
        for a in server.get("/api/v1/alerts")["alerts"]
    ]


def last_evaluation(server: Server) -> float:
    """When Prometheus last evaluated its rule groups (the oldest group's time), as a Unix time."""
    groups = server.get("/api/v1/rules")["groups"]
    return min(_epoch(g["lastEvaluation"]) for g in groups) if groups else 0.0


@dataclass(frozen=True)
class Replay:
    """Prometheus' alerts after each replayed evaluation, and how long the replay took."""

    states: list[list[PrometheusAlert]]
    seconds: float


def replay(
    prometheus: Server, target: ExpositionServer, expositions: Sequence[bytes], *, scrape_interval: float
) -> Replay:
    """Serve each exposition until Prometheus has scraped it and evaluated its rules once, then the next.

    The next exposition is shown as soon as an evaluation is seen, so it is scraped well before
    the following evaluation; an evaluation counts for an exposition only if it came more than one
    scrape interval after the exposition was shown.
    """
    started = time.monotonic()
    target.show(expositions[0])
    if not wait_for(lambda: target_up(prometheus), timeout=30):
        raise ExpertError(
            f"Prometheus never scraped {target.target} successfully", f"read {prometheus.log} for scrape errors"
        )
    evaluated = last_evaluation(prometheus)
    if not wait_for(lambda: last_evaluation(prometheus) > evaluated, timeout=30):
        raise ExpertError("Prometheus does not evaluate its rules", f"read {prometheus.log}")
    states = []
    for exposition in expositions:
        target.show(exposition)
        shown = time.time()
        if not wait_for(_evaluated_after(prometheus, shown + scrape_interval + 0.1), timeout=30, interval=0.05):
            raise ExpertError("Prometheus stopped evaluating its rules during the replay", f"read {prometheus.log}")
        states.append(prometheus_alerts(prometheus))
    return Replay(states, time.monotonic() - started)


def _evaluated_after(prometheus: Server, moment: float) -> Callable[[], bool]:
    return lambda: last_evaluation(prometheus) > moment


def transitions(
    states: Sequence[Sequence[PrometheusAlert]], times: Sequence[float]
) -> list[tuple[float, tuple[str, str], str]]:
    """(simulated time, alert, "pending" | "firing" | "resolved") each time an alert changes state."""
    changes = []
    previous: dict[tuple[str, str], str] = {}
    for at, alerts in zip(times, states, strict=True):
        now = {a.key: a.state for a in alerts}
        for key, state in now.items():
            if previous.get(key) != state:
                changes.append((at, key, state))
        changes += [(at, key, "resolved") for key, state in previous.items() if key not in now and state == "firing"]
        previous = now
    return changes


@dataclass
class AlertHistory:
    """Who evaluated the rules, every alert state change (simulated time), and what reached the webhook."""

    producer: str
    changes: list[tuple[float, tuple[str, str], str]]
    delivered: list[Delivered]
    pending_to_firing: dict[tuple[str, str], float]
    """Per alert that fired: simulated seconds from going active (pending) to firing."""

    def keys(self, state: str, prefix: str = "") -> set[tuple[str, str]]:
        """The alerts that reached `state` ("pending", "firing", "resolved"), optionally by name prefix."""
        return {key for _, key, s in self.changes if s == state and key[0].startswith(prefix)}

    def first(self, key: tuple[str, str], state: str) -> float | None:
        """When `key` first reached `state` (simulated seconds), or None."""
        return next((at for at, k, s in self.changes if k == key and s == state), None)

    def was_delivered(self, key: tuple[str, str], state: str) -> bool:
        return any(d.key == key and d.status == state for d in self.delivered)

    def rows(self, runbooks: Mapping[str, str]) -> list[dict[str, str]]:
        """Each state change as a table row: when, which alert about what, delivered or not, its runbook."""
        return [
            {
                "t": f"{at / 60:.0f} min",
                "alert": key[0],
                "about": key[1],
                "state": state,
                "delivered": "✓" if self.was_delivered(key, state) else ("-" if state == "pending" else "✗"),
                "runbook": runbooks.get(key[0], ""),
            }
            for at, key, state in self.changes
        ]


def prometheus_history(
    states: Sequence[Sequence[PrometheusAlert]], times: Sequence[float], received: Sequence[Delivered], speedup: float
) -> AlertHistory:
    """What Prometheus did (its states after each evaluation) and what Alertmanager delivered.

    Pending → firing is measured on Prometheus' own clock: from the alert's `activeAt` to the
    firing notification's `startsAt` (the evaluation that fired it), scaled back to simulated time.
    """
    active_at = {a.key: a.active_at for alerts in states for a in alerts}
    firing = {d.key: d.starts_at for d in received if d.status == "firing"}
    # Alertmanager keeps startsAt to the millisecond, Prometheus activeAt to the nanosecond: compare in ms,
    # activeAt cut to its millisecond too (rounding the difference alone made an exact `for` of 2.000 s
    # come out as 1.999 s when the two were cut at different sub-millisecond points).
    pending_to_firing = {
        key: round(firing[key] - math.floor(active_at[key] * 1000) / 1000, 3) * speedup
        for key in firing
        if key in active_at
    }
    return AlertHistory("Prometheus + Alertmanager", transitions(states, times), list(received), pending_to_firing)


def in_process_history(evaluated: Sequence[Transition], received: Sequence[Delivered]) -> AlertHistory:
    """What the in-process evaluator did, standing in for Prometheus, and what reached the webhook."""
    changes = []
    for t in evaluated:
        key = alert_key(t.alert.labels)
        if t.status == "firing" and t.alert.rule.for_seconds:
            changes.append((t.alert.active_at, key, "pending"))
        changes.append((t.at, key, t.status))
    pending_to_firing = {
        alert_key(t.alert.labels): (t.alert.fired_at or t.at) - t.alert.active_at
        for t in evaluated
        if t.status == "firing"
    }
    return AlertHistory(
        "the in-process evaluator", sorted(changes, key=lambda c: c[0]), list(received), pending_to_firing
    )


def deliver_transitions(evaluated: Sequence[Transition], url: str) -> list[int]:
    """POST the evaluator's transitions to `url` in Alertmanager's format, one payload per evaluation."""
    by_time: dict[float, list[Transition]] = {}
    for t in evaluated:
        by_time.setdefault(t.at, []).append(t)
    return [deliver(url, alertmanager_payload(group)) for _, group in sorted(by_time.items())]


def expected_deliveries(history: AlertHistory) -> set[tuple[tuple[str, str], str]]:
    """Every firing and resolved alert Prometheus produced: what Alertmanager must deliver."""
    return {(key, state) for _, key, state in history.changes if state in ("firing", "resolved")}


def await_deliveries(
    received: Callable[[], Sequence[Delivered]], expected: set[tuple[tuple[str, str], str]], timeout: float
) -> bool:
    """Wait until every (alert, status) in `expected` has reached the webhook; whether it did in time."""
    return wait_for(lambda: expected <= {(d.key, d.status) for d in received()}, timeout=timeout)
