"""A Databricks cluster policy evaluated offline against a job cluster spec.

Why: the workspace rejects a cluster that breaks its policy only at deploy or run time, in
production. The policy definition is JSON in the repository (Terraform creates it), so the same
rules can be checked in the unit-test gate before anything is deployed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def policy_violations(cluster: Mapping[str, Any], policy: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Evaluate a job cluster spec against a Databricks cluster policy definition.

    Supports the policy types the pipeline's policy uses: fixed, allowlist, blocklist, range,
    regex, forbidden, unlimited. Absent attributes take the policy default (the job sets
    `apply_policy_default_values`), so only an explicit value can break a rule.
    """
    flat = flatten(cluster)
    flat.setdefault("cluster_type", "job")
    problems = []
    for attribute, rule in policy.items():
        kind, value = rule["type"], flat.get(attribute)
        if kind == "forbidden" and value is not None:
            problems.append(f"{attribute} is forbidden by the policy")
        if value is None or kind in ("unlimited", "forbidden"):
            continue
        if kind == "fixed" and value != rule["value"]:
            problems.append(f"{attribute}={value!r} but the policy fixes {rule['value']!r}")
        elif kind == "allowlist" and value not in rule["values"]:
            problems.append(f"{attribute}={value!r} is not in the policy's allowlist {rule['values']}")
        elif kind == "blocklist" and value in rule["values"]:
            problems.append(f"{attribute}={value!r} is blocked by the policy")
        elif kind == "range" and not rule.get("minValue", float("-inf")) <= value <= rule.get("maxValue", float("inf")):
            problems.append(f"{attribute}={value} is outside [{rule.get('minValue')}, {rule.get('maxValue')}]")
        elif kind == "regex" and not re.fullmatch(rule["pattern"], str(value)):
            problems.append(f"{attribute}={value!r} does not match {rule['pattern']!r}")
    return problems


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as the policy names them: `custom_tags.team`, `autoscale.max_workers`."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(flatten(item, f"{name}."))
        else:
            flat[name] = item
    return flat
