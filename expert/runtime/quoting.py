"""Values from configuration written into another tool's syntax, quoted so they stay values.

Why: a password pasted into a JAAS line between double quotes ends the quoting at its first `"`
(and a backslash escapes whatever follows), so a valid credential becomes a broken or a
different configuration. SQL identifiers and Delta paths have their own helpers where the SQL is
built (`expert.runtime.snowflake_ddl.identifier`, `expert.lakehouse.delta_ops.delta_table`).
"""

from __future__ import annotations

from expert.runtime.errors import ConfigError


def jaas_quoted(value: str, *, key: str = "a JAAS option") -> str:
    """`value` as a double-quoted JAAS option value (Kafka's `sasl.jaas.config`).

    Kafka's `JaasConfig` reads the line with `java.io.StreamTokenizer`, whose quoted strings take
    `\\\\` and `\\"` as escapes and end at a line break; so backslashes and quotes are escaped, and
    a line break (which no escape can carry) is refused.
    """
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{key} contains a line break", f"remove the line break from {key}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
