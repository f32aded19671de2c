"""Exercise databricks/03.3 · Plan a schemachange deploy: each script once, in version order.

databricks/03 keeps the Snowflake schema as migrations in deploy/snowflake/migrations and applies
them with schemachange, which records every run in a change-history table. Deploying the same
folder to staging, then to prod, then again after a hotfix must apply exactly what each database
still lacks, in the right order, and nothing twice. Write the plan schemachange makes.

Your task: `migration_plan(scripts, history)` returns the names of the scripts a deploy applies,
in the order it applies them. `scripts` maps each file name of the folder to its content:
versioned scripts `V<version>__<description>.sql` (the version is dotted numbers: 1.2.0, 1.10.0)
and repeatable ones `R__<description>.sql`. `history` is the change-history table, oldest first,
one dict per run with VERSION ("" for a repeatable script), SCRIPT (the file name), SCRIPT_TYPE
("V" or "R"), CHECKSUM (the SHA-224 hex digest of the content that ran: `checksum` below) and
STATUS ("Success" or "Failed"). schemachange's rules (out-of-order off):
- only rows with STATUS "Success" count: a failed run applied nothing;
- a versioned script runs once: not if it already succeeded, and not if its version is at or below
  the highest version applied successfully (a hotfix merged below it never runs: give it a new
  version instead);
- a repeatable script runs when it never succeeded, or when its content differs from the content
  of its latest successful run;
- versioned scripts run first, in version order (numbers compared as numbers: 1.9.0, 1.10.0,
  1.10.2), then repeatable scripts in name order.
So a deploy right after a deploy plans nothing. The check plans a fresh database and a history
with every case above, then plans again after applying your plan.

Check it: expert check databricks/03.3
"""

import hashlib


def checksum(content: str) -> str:
    """What schemachange records in CHECKSUM for a script's content."""
    return hashlib.sha224(content.encode("utf-8")).hexdigest()


def version_key(name: str) -> tuple[int, ...]:
    """`V1.10.0__add_x.sql` → (1, 10, 0): versions compared as numbers."""
    return tuple(int(part) for part in name[1:].split("__", 1)[0].split("."))


def migration_plan(scripts: dict[str, str], history: list[dict[str, str]]) -> list[str]:
    """The scripts `schemachange deploy` applies next, in the order it applies them."""
    succeeded = [row for row in history if row["STATUS"] == "Success"]
    applied = {row["SCRIPT"] for row in succeeded if row["SCRIPT_TYPE"] == "V"}
    newest = max((version_key("V" + row["VERSION"]) for row in succeeded if row["SCRIPT_TYPE"] == "V"), default=None)
    last_run = {row["SCRIPT"]: row["CHECKSUM"] for row in succeeded if row["SCRIPT_TYPE"] == "R"}
    versioned = sorted((name for name in scripts if name.startswith("V")), key=version_key)
    plan = [name for name in versioned if name not in applied and (newest is None or version_key(name) > newest)]
    repeatable = sorted(name for name in scripts if name.startswith("R"))
    return plan + [name for name in repeatable if last_run.get(name) != checksum(scripts[name])]
