"""Entry point of every task of the lakehouse job (deploy/databricks/resources/lakehouse_job.yml).

Each task runs one step of the medallion pipeline, with write-audit-publish around gold:

    bronze → silver → gold → audit → publish

`bronze`, `silver` and `gold` run the shared pipeline (`expert.lakehouse`) on the environment's
lake root; `audit` checks the gold tables against their contracts (deploy/contracts) and fails
the run on a breach, so nothing is published; `publish` makes the audited gold tables live (one
Delta commit each), verifies them and restores every previous version when any verification
fails. The run then fails, so someone is paged, but consumers already see the last good data.

The bundle syncs this repository's `expert/` package next to this file; the task puts the synced
root on `sys.path`, so the job runs exactly the code that was reviewed and tested (databricks/03
runs the same functions locally).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

TASKS = ("bronze", "silver", "gold", "audit", "publish")
BUNDLE_FILES_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one task of the lakehouse job.")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--lake-root", required=True, help="root of the environment's tables (a volume path)")
    parser.add_argument("--landing", required=True, help="where upstream systems drop raw files")
    parser.add_argument("--release", required=True, help="the release being run (the deployed git commit)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(BUNDLE_FILES_ROOT))
    from pyspark.sql import SparkSession

    from expert.lakehouse import GOLD_SPECS, MedallionLayout, run_bronze, run_gold, run_silver
    from expert.release import audit_table, load_contracts, release_tables
    from expert.release.gold import gold_verifier

    spark = SparkSession.builder.getOrCreate()
    layout = MedallionLayout(args.lake_root, landing_dir=args.landing)
    if args.task == "bronze":
        run_bronze(spark, layout)
    elif args.task == "silver":
        run_silver(spark, layout)
    elif args.task == "gold":
        run_gold(spark, layout)
    elif args.task == "audit":
        contracts = load_contracts(CONTRACTS)
        now = datetime.now(UTC).replace(tzinfo=None)
        breaches = [
            f"{spec.table}: {f.check} (measured {f.measured}, expected {f.expected})"
            for spec in GOLD_SPECS
            for f in audit_table(spark, layout.table(spec.table), contracts[spec.table], now=now).failures
        ]
        if breaches:
            raise SystemExit("contract breach, nothing published:\n" + "\n".join(breaches))
    else:
        result = release_tables(
            spark,
            args.release,
            {spec.table: layout.table(spec.table) for spec in GOLD_SPECS},
            live=lambda table: layout.location("live", table),
            verify=gold_verifier(spark, layout, GOLD_SPECS),
            log_location=layout.location("live", "_release_log"),
        )
        failures = result.failures
        if failures:
            raise SystemExit(f"release {args.release} rolled back:\n" + "\n".join(failures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
