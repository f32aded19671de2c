"""CI/CD deployment: the pipeline as a job, promoted test → staging → production, with rollback.

Why it matters in production: most data incidents are not infrastructure failures but releases:
a changed aggregation that double-counts, a renamed column that breaks a dashboard. A platform
that deploys by clicking cannot review, test, repeat or undo a change. Here every part of the
deployment is code that is checked before it runs: the Databricks job (typed SDK classes → an
Asset Bundle), the workspace and Snowflake infrastructure (Terraform), the Snowflake schema
(versioned migrations), the data promise (contracts) and the order of stages (a GitHub workflow).

Learning objectives:
- Define the medallion pipeline as a Databricks job from typed databricks-sdk classes, render it as
  an Asset Bundle with dev / staging / prod targets, and validate every target properly (the
  SDK's `from_dict` silently drops unknown keys), including the cluster policy it must satisfy.
- Promote releases with write-audit-publish: a unit-test gate, a staging build, a contract audit,
  an atomic blue/green publish of Delta tables, verification in production and an automated
  `RESTORE` when verification fails (shown for a good, a bad and a blocked release).
- Keep the platform as Terraform (Databricks and Snowflake providers) and the Snowflake schema as
  schemachange migrations, applied in order, once, with a change-history table; let dbt's tests
  gate what Snowflake serves (a failing test blocks the publish).
- Check the repository's own deployment workflow with actionlint.

Run it:
    python expert/databricks/03_cicd_deployment.py [--rows N] [--target dev|staging|prod]
    python expert/databricks/03_cicd_deployment.py --write-bundle   # regenerate the bundle's job file
    expert run databricks/03

Locally: Spark + Delta Lake for the releases, schemachange and dbt-snowflake against fakesnow's
Snowflake server on 127.0.0.1, `terraform fmt` and actionlint when installed; the validators
(bundle, cluster policy, schedule, Terraform, workflow) live in `expert.release`. With credentials
in .env: the Databricks CLI deploys the bundle (`databricks bundle validate` + `deploy`, as the
deploy workflow does), schemachange migrates the account and dbt tests there; `--apply-infra`
applies Terraform.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import yaml

from expert import PROJECT_ROOT
from expert.lakehouse import (
    GOLD_DAILY_FUNNEL,
    GOLD_DAILY_SALES,
    GOLD_SPECS,
    GoldSpec,
    MedallionLayout,
    aggregate,
    land_raw,
    run_medallion,
)
from expert.lakehouse.ground_truth import daily_sales_match, expected_daily_sales
from expert.release import bundle, bundle_cli, gate, migrations, report, terraform, workflow
from expert.release.audit import audit_table, load_contracts
from expert.release.environments import Environments
from expert.release.gold import Release, ReleaseOutcome, gold_verifier, with_spec
from expert.release.policy import policy_violations
from expert.release.publish import (
    confirm_already_live,
    live_release,
    live_version,
    read_release_log,
    release_tables,
    restored_to_blue,
)
from expert.release.serve import DBT_SELECTION, prepare_candidate, publish_if_dbt_passes, serve_daily_sales
from expert.runtime.data import DAYS, EPOCH, EcommerceWorld
from expert.runtime.pattern import PatternRun, run_pattern

if TYPE_CHECKING:
    from databricks.sdk.service.jobs import JobSettings
    from pyspark.sql import SparkSession

    from expert.release import AuditReport, Verification
    from expert.runtime.snowflake import SnowflakeSession

DEPLOY = PROJECT_ROOT / "deploy"
BUNDLE_DIR = DEPLOY / "databricks"
BUNDLE_FILE = BUNDLE_DIR / "databricks.yml"
JOB_RESOURCE_FILE = BUNDLE_DIR / "resources" / "lakehouse_job.yml"
CONTRACTS_DIR = DEPLOY / "contracts"
TERRAFORM_DIR = DEPLOY / "terraform"
CLUSTER_POLICY_FILE = TERRAFORM_DIR / "databricks" / "cluster_policy.json"
MIGRATIONS_DIR = DEPLOY / "snowflake" / "migrations"
WORKFLOW_FILE = PROJECT_ROOT / ".github" / "workflows" / "deploy.yml"
TOOLS_BIN = PROJECT_ROOT / ".cache" / "bin"
"""Where `make tools` puts the tools it builds (actionlint)."""

JOB_KEY = "lakehouse_medallion"
JOB_NAME = "lakehouse-medallion-${bundle.target}"
"""One job per target, so staging and prod can share a workspace without a name clash."""
TARGETS = ("dev", "staging", "prod")
PIPELINE_TASKS = ("bronze", "silver", "gold", "audit", "publish")
SNOWFLAKE_DATABASES = {"staging": "ANALYTICS_STAGING", "prod": "ANALYTICS_PROD"}
CLOCK = (EPOCH + timedelta(days=DAYS)).replace(tzinfo=None)
"""The data generator's end of time: freshness is measured against it, so every run is reproducible."""

LOCAL_DEPLOY_VARIABLES = {"deployer_application_id": "11111111-2222-3333-4444-555555555555"}
"""Values CI passes with `--var` at deploy time; locally a sample stands in so every target resolves."""

TEST_FILE = "tests/databricks/test_03_cicd_deployment.py"
VALIDATORS_TEST_FILE = "tests/test_release_validators.py"
GATE_TESTS = (
    f"{TEST_FILE}::test_typed_job_round_trips_and_matches_the_committed_bundle",
    f"{TEST_FILE}::test_from_dict_drops_a_misspelled_key_that_the_validator_reports",
    f"{TEST_FILE}::test_cluster_policy_rejects_an_oversized_cluster",
    f"{TEST_FILE}::test_prod_must_run_as_a_service_principal",
    f"{TEST_FILE}::test_terraform_files_parse_and_pin_their_providers",
    f"{TEST_FILE}::test_migrations_are_versioned_and_ordered",
    f"{VALIDATORS_TEST_FILE}::test_quartz_cron_validation",
    f"{VALIDATORS_TEST_FILE}::test_target_overrides_merge_keyed_lists_by_key",
    f"{VALIDATORS_TEST_FILE}::test_unresolved_references_are_reported",
    f"{VALIDATORS_TEST_FILE}::test_each_policy_rule_type_is_enforced",
)
"""The unit tests the promotion runs as its first gate: pure Python, seconds, no engine."""


# ---------------------------------------------------------------------------------- jobs as code


def build_job_settings() -> JobSettings:
    """The medallion pipeline as a typed job: five tasks, one policy-governed job cluster.

    Why typed classes: a misspelled field is an AttributeError where it is written, enums close
    the vocabularies (data security mode, pause status), and the IDE knows every option.
    """
    from databricks.sdk.service import compute, jobs

    cluster = jobs.JobCluster(
        job_cluster_key="pipeline",
        new_cluster=compute.ClusterSpec(
            spark_version="16.4.x-scala2.13",
            node_type_id="m6gd.large",
            num_workers=1,
            data_security_mode=compute.DataSecurityMode.SINGLE_USER,
            runtime_engine=compute.RuntimeEngine.STANDARD,
            policy_id="${var.cluster_policy_id}",
            apply_policy_default_values=True,
            custom_tags={"team": "data-platform", "cost_center": "lakehouse"},
        ),
    )
    arguments = ["--lake-root", "${var.lake_root}", "--landing", "${var.landing}", "--release", "${bundle.git.commit}"]
    tasks = []
    for previous, task in zip((None, *PIPELINE_TASKS), PIPELINE_TASKS, strict=False):
        tasks.append(
            jobs.Task(
                task_key=task,
                description=f"medallion step: {task}",
                depends_on=[jobs.TaskDependency(task_key=previous)] if previous else None,
                job_cluster_key="pipeline",
                spark_python_task=jobs.SparkPythonTask(
                    python_file="../lakehouse_task.py", parameters=["--task", task, *arguments]
                ),
                # Ingestion and transformation are idempotent (checkpoints, MERGE): safe to retry.
                # Publishing is not retried: it verifies and rolls back on its own.
                max_retries=1 if task in ("bronze", "silver", "gold") else 0,
                timeout_seconds=3600,
            )
        )
    return jobs.JobSettings(
        name=JOB_NAME,
        description="Medallion pipeline with write-audit-publish of the gold tables (databricks/03).",
        tags={"pipeline": "lakehouse", "managed_by": "bundle"},
        job_clusters=[cluster],
        tasks=tasks,
        max_concurrent_runs=1,
        timeout_seconds=4 * 3600,
        queue=jobs.QueueSettings(enabled=True),
        schedule=jobs.CronSchedule(
            quartz_cron_expression="0 0 2 * * ?", timezone_id="UTC", pause_status=jobs.PauseStatus.PAUSED
        ),
        email_notifications=jobs.JobEmailNotifications(on_failure=["${var.alert_email}"]),
        health=jobs.JobsHealthRules(
            rules=[
                jobs.JobsHealthRule(
                    metric=jobs.JobsHealthMetric.RUN_DURATION_SECONDS,
                    op=jobs.JobsHealthOperator.GREATER_THAN,
                    value=2 * 3600,
                )
            ]
        ),
    )


def job_resource_yaml(settings: JobSettings) -> str:
    """The bundle resource file for the job, rendered from the typed settings."""
    header = (
        "# Generated from typed databricks-sdk classes by expert/databricks/03_cicd_deployment.py\n"
        "# (`--write-bundle`). Do not edit by hand: change build_job_settings() and regenerate.\n"
    )
    document = {"resources": {"jobs": {JOB_KEY: settings.as_dict()}}}
    return header + yaml.safe_dump(document, sort_keys=False, width=120)


def jobs_as_code(run: PatternRun) -> dict[str, bundle.TargetJob]:
    """Build the typed job, check the committed bundle file and validate every target."""
    settings = build_job_settings()
    same = bundle.rendered_file_matches(JOB_RESOURCE_FILE, job_resource_yaml(settings), write=run.args.write_bundle)
    where = JOB_RESOURCE_FILE.relative_to(PROJECT_ROOT)
    run.check(
        "the committed bundle job file is exactly what the typed classes render",
        same,
        f"{where}" + ("" if same else ": run with --write-bundle"),
    )
    run.check("typed settings round-trip through the SDK unchanged", not bundle.round_trip_problems(settings.as_dict()))

    typo = {**settings.as_dict(), "max_concurent_runs": 5}
    from databricks.sdk.service.jobs import JobSettings

    dropped = "max_concurent_runs" not in JobSettings.from_dict(typo).as_dict()
    caught = bundle.round_trip_problems(typo)
    run.check(
        "a misspelled key is dropped silently by from_dict and reported by the round-trip check",
        dropped and caught == ["max_concurent_runs: unknown to the Jobs API (dropped by from_dict)"],
        caught[0] if caught else "not caught",
    )

    policy = json.loads(CLUSTER_POLICY_FILE.read_text())
    context = {
        "workspace.current_user.userName": "learner@example.com",
        "bundle.git.commit": bundle.git_commit(PROJECT_ROOT),
        **{f"var.{k}": v for k, v in [*LOCAL_DEPLOY_VARIABLES.items(), *run.args.var]},
    }
    resolved = bundle.resolve_targets(BUNDLE_FILE, TARGETS, context, job_key=JOB_KEY, sync_root=PROJECT_ROOT)
    rows = []
    for target, job in resolved.items():
        problems = bundle.target_problems(job, policy)
        rows.append(bundle.target_row(job, problems))
        run.check(
            f"{target}: job settings valid (SDK round trip, policy, identity, schedule, DAG)",
            not problems,
            "; ".join(problems) or f"{len(job.settings['tasks'])} tasks",
        )
    run.table(rows, title="The job per target (resolved as `databricks bundle deploy -t <target>` would)")
    names = [job.settings["name"] for job in resolved.values()]
    run.check("every target deploys a job of its own name", len(set(names)) == len(names), ", ".join(names))
    oversized = copy.deepcopy(resolved["prod"].settings["job_clusters"][0]["new_cluster"])
    oversized["num_workers"] = 64
    rejected = policy_violations(oversized, policy)
    run.check("the cluster policy rejects a 64-worker cluster", bool(rejected), rejected[0] if rejected else "accepted")
    return resolved


# ---------------------------------------------------------------------------------- infrastructure as code


def infrastructure_as_code(run: PatternRun) -> None:
    """Format-check and parse both Terraform stacks, and check they agree with the bundle and migrations."""
    binary = terraform.terraform_binary(TOOLS_BIN)
    if binary:
        clean, version, diff = terraform.fmt_check(binary, TERRAFORM_DIR)
        run.check(f"`terraform fmt -check` is clean ({version})", clean, diff[:200] or "no diff")
    else:
        run.note("terraform is not installed here: formatting is not checked (the parse below still runs)")
    stacks = terraform.check_stacks(TERRAFORM_DIR)
    for name, stack in stacks.items():
        run.check(
            f"{name}: parses, providers pinned, variables declared and used, secrets sensitive",
            not stack.problems,
            "; ".join(stack.problems) or f"{len(terraform.resources(stack.parsed))} resources",
        )
    run.table([stack.row() for stack in stacks.values()], title="Terraform stacks (parsed with python-hcl2)")

    bundle_file = yaml.safe_load(BUNDLE_FILE.read_text())
    lookup = bundle_file["variables"]["cluster_policy_id"]["lookup"]["cluster_policy"]
    policy_names = terraform.resource_attribute(stacks["databricks"].parsed, "databricks_cluster_policy", "name")
    run.check(
        "the bundle looks up the cluster policy Terraform creates",
        lookup in policy_names,
        f"{lookup!r} in {policy_names}",
    )
    databases = terraform.local_value(stacks["snowflake"].parsed, "databases")
    run.check(
        "Terraform creates exactly the databases the migrations deploy to",
        databases == SNOWFLAKE_DATABASES,
        str(databases),
    )
    run.note(
        "`terraform validate` needs the providers (not downloadable here): checked by fmt, the parse and the rules above."
    )


# ---------------------------------------------------------------------------------- staging


def deploy_to_staging(
    run: PatternRun, resolved: Mapping[str, bundle.TargetJob], env: Mapping[str, str], session: SnowflakeSession
) -> tuple[Environments, Any]:
    """Deploy everything a release needs, then run the whole pipeline in the staging environment."""
    apply_infrastructure(run)
    deploy_bundle(run, resolved)
    snowflake_migrations(run, env, session, SNOWFLAKE_DATABASES["staging"])
    world = EcommerceWorld(run.rows, seed=run.seed)
    staging = MedallionLayout.local(run.workdir / "staging")
    land_raw(world, staging, batches=3)
    with run.timed() as watch:
        result = run_medallion(run.spark, staging)
    run.table(
        [{"table": table, "rows ingested": rows} for table, rows in result.bronze.rows.items()],
        title="Bronze ingestion in staging (Structured Streaming, availableNow)",
    )
    how = "wall time of run_medallion at this --rows"
    run.figure("staging pipeline run (bronze → silver → gold)", watch.seconds, "s", how=how, key=True)
    return Environments.under(staging, run.workdir / "prod"), world


def apply_infrastructure(run: PatternRun) -> None:
    """`terraform init` + `apply` for both stacks: only in cloud mode, and only when asked to."""
    binary = terraform.terraform_binary(TOOLS_BIN)
    both_clouds = run.settings.databricks.is_cloud and run.settings.snowflake.is_cloud
    for stack in sorted(p for p in TERRAFORM_DIR.iterdir() if p.is_dir()):
        if run.args.apply_infra and binary and both_clouds:
            for command, code in terraform.apply_stack(binary, stack):
                run.check(f"terraform {command} {stack.name}", code == 0, f"exit {code}")
            continue
        run.cloud_only_step(
            "terraform",
            terraform.apply_commands(stack, PROJECT_ROOT),
            "opt-in: pass --apply-infra with both workspaces configured (it creates billable resources)"
            if both_clouds
            else "needs Databricks and Snowflake credentials, provider downloads and remote state",
            kind=f"apply the {stack.name} stack",
            language="bash",
            purpose=f"create or update what {stack.relative_to(PROJECT_ROOT)} declares, with state in the team's bucket",
        )


def deploy_bundle(run: PatternRun, resolved: Mapping[str, bundle.TargetJob]) -> None:
    """`databricks bundle validate`, then `deploy`, for `--target`: the deploy workflow's own two commands."""
    target = run.args.target
    steps = bundle_cli.commands(target, run.args.var)
    if run.settings.databricks.is_cloud:
        for result in bundle_cli.run(steps, BUNDLE_DIR, run.settings.databricks):
            run.check(f"`{result.command}` succeeds", result.exit_code == 0, result.output or "no output")
        return
    reason = "no Databricks workspace is configured (set DATABRICKS_HOST and a token in .env)"
    run.cloud_only_step(
        "databricks bundle",
        bundle_cli.as_script(steps, BUNDLE_DIR, PROJECT_ROOT),
        reason,
        kind=f"validate and deploy the {target} target",
        language="bash",
        purpose="create or update the job exactly as the bundle defines it, tracked in the bundle's deployment state",
    )
    run.cloud_only_step(
        "databricks bundle",
        json.dumps(resolved[target].settings, indent=2),
        reason,
        kind=f"the job `bundle deploy -t {target}` creates (resolved here from the bundle files)",
        language="json",
    )


def snowflake_migrations(run: PatternRun, env: Mapping[str, str], session: SnowflakeSession, database: str) -> None:
    """Apply the versioned migrations to one environment's database (a second apply changes nothing), then
    check the tables that serve gold carry every contract column (a contract across two systems)."""
    scripts = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    versioned = [s for s in scripts if s.startswith("V")]
    where = "fakesnow's Snowflake server on 127.0.0.1" if session.is_local else "the Snowflake account from .env"
    run.say(
        f"schemachange: {len(versioned)} versioned + {len(scripts) - len(versioned)} repeatable script(s) → {database} on {where}"
    )
    log = run.workdir / "schemachange.log"
    first = migrations.schemachange_deploy(env, database, MIGRATIONS_DIR, log, session)
    second = migrations.schemachange_deploy(env, database, MIGRATIONS_DIR, log, session)
    run.check(
        f"{database}: every migration applied once, in order",
        first.exit_code == 0 and first.applied == len(scripts),
        f"{first.applied} applied in {first.seconds:.1f} s (log: {log.name})",
    )
    run.check(
        f"{database}: rerunning schemachange applies nothing (idempotent)",
        second.exit_code == 0 and second.applied == 0,
        f"{second.applied} applied",
    )
    history = session.fetch_df(
        f"SELECT VERSION, SCRIPT, SCRIPT_TYPE, STATUS, CHECKSUM FROM {database}.SCHEMACHANGE.CHANGE_HISTORY ORDER BY INSTALLED_ON"
    )
    versions = [v for v in history["VERSION"] if v]
    run.check(
        f"{database}: versions recorded in ascending order",
        versions == sorted(versions, key=lambda v: [int(x) for x in v.split(".")]),
        " → ".join(versions),
    )
    if database == SNOWFLAKE_DATABASES["staging"]:
        history["CHECKSUM"] = history["CHECKSUM"].str[:12]
        run.table(history, title=f"{database}.SCHEMACHANGE.CHANGE_HISTORY")
        how = "wall time of one in-process `schemachange deploy`"
        run.figure("schemachange deploy, first apply", first.seconds, "s", how=how)
    served = {GOLD_DAILY_SALES: "DAILY_SALES", GOLD_DAILY_FUNNEL: "DAILY_FUNNEL"}
    found = migrations.missing_contract_columns(session, database, served, load_contracts(CONTRACTS_DIR))
    for table, snowflake_table in served.items():
        missing, columns = found[snowflake_table]
        run.check(
            f"GOLD.{snowflake_table} has every column of the {table} contract",
            not missing,
            f"missing {missing}" if missing else f"{columns} columns",
        )


# ---------------------------------------------------------------------------------- releases


def releases() -> tuple[Release, ...]:
    """The three releases the pattern promotes: good, subtly wrong, and contract-breaking."""
    sales = next(s for s in GOLD_SPECS if s.table == GOLD_DAILY_SALES)
    double_counted = {**sales.measures, "revenue": "CAST(round(sum(amount * quantity), 2) AS DECIMAL(18, 2))"}
    by_status = ("order_date", "status")
    return (
        Release("1.0.0", "the medallion pipeline of databricks/01", GOLD_SPECS),
        Release(
            "1.1.0",
            "revenue 'from order lines': sum(amount * quantity), but amount already includes quantity",
            with_spec(GOLD_SPECS, GOLD_DAILY_SALES, measures=double_counted),
        ),
        Release(
            "1.2.0",
            "daily sales split by order status: changes the table's grain and schema",
            with_spec(
                GOLD_SPECS,
                GOLD_DAILY_SALES,
                keys=by_status,
                schema=sales.schema.replace("order_date DATE,", "order_date DATE, status STRING,"),
            ),
        ),
    )


def promote(
    run: PatternRun,
    env: Environments,
    release: Release,
    ground_truth: Mapping[str, tuple[int, float]],
    live_specs: dict[str, GoldSpec],
) -> ReleaseOutcome:
    """One release through staging build → audit → publish → verify → keep or roll back.

    Only the tables whose definition differs from the live one are rebuilt and published
    (`live_specs` is updated when the release is kept).
    """
    changed = [spec for spec in release.specs if live_specs.get(spec.table) != spec]
    run.say(f"changes {', '.join(s.table for s in changed)}: rebuilt from staging silver and audited")
    before = {spec.table: live_version(run.spark, env.live(spec.table)) for spec in GOLD_SPECS}
    staged = build_release(run.spark, env, release, changed)
    reports = audit_release(run, env, release, staged)
    outcome = ReleaseOutcome(release, all(r.passed for r in reports.values()))
    if not outcome.audit_passed:
        failed = [f"{t}: {f.check}" for t, r in reports.items() for f in r.failures]
        outcome.decision = "blocked at staging"
        outcome.live_versions = {t: live_version(run.spark, env.live(t)) for t in before}
        run.check(
            f"{release.version} is blocked: the contract audit failed, nothing was published",
            outcome.live_versions == before,
            "; ".join(failed[:3]),
        )
        return outcome
    verifications = publish_and_verify(run, env, release, changed, staged)
    outcome.published = True
    outcome.live_versions = {t: live_version(run.spark, env.live(t)) for t in before}
    failures = [f"{v.publication.table}: {r}" for v in verifications for r in v.failures]
    title = f"Verification of release {release.version} in production (after the swap)"
    run.table(report.verification_rows(verifications), title=title, max_rows=12)
    outcome.verification = "passed" if not failures else "failed: " + ", ".join(report.failed_checks(verifications))
    if failures:
        outcome.decision = "rolled back (RESTORE)"
        run.check(
            f"{release.version} was rolled back automatically: production is the previous release again",
            True,
            failures[0],
        )
    else:
        outcome.decision = "kept (live)"
        live_specs.update({spec.table: spec for spec in changed})
        matches, detail = daily_sales_match(run.spark, env.live(GOLD_DAILY_SALES), ground_truth)
        run.check(f"{release.version} is live and equals the generator's ground truth", matches, detail)
    return outcome


def build_release(
    spark: SparkSession, env: Environments, release: Release, specs: Sequence[GoldSpec]
) -> dict[str, str]:
    """Write the release's gold tables into its own staging location (a full refresh from silver).

    A changed definition cannot be applied incrementally (the incremental flow only recomputes
    keys whose silver rows changed), so a release rebuilds its gold tables from scratch.
    """
    staged = {}
    for spec in specs:
        location = env.staged(release.version, spec.table)
        aggregate(spark, env.staging, spec).write.format("delta").mode("overwrite").option(
            "overwriteSchema", "true"
        ).save(location)
        staged[spec.table] = location
    return staged


def audit_release(
    run: PatternRun, env: Environments, release: Release, staged: Mapping[str, str]
) -> dict[str, AuditReport]:
    """Audit every staged table against its contract and show the findings."""
    contracts = load_contracts(CONTRACTS_DIR)
    reports = {
        table: audit_table(run.spark, location, contracts[table], now=CLOCK) for table, location in staged.items()
    }
    run.table(
        report.audit_rows(reports, show_all_of=GOLD_DAILY_SALES),
        title=f"Contract audit of release {release.version} (all {GOLD_DAILY_SALES} checks, failures of the others)",
        max_rows=14,
    )
    return reports


def publish_and_verify(
    run: PatternRun, env: Environments, release: Release, specs: Sequence[GoldSpec], staged: Mapping[str, str]
) -> list[Verification]:
    """Publish every table of the release (blue → green), verify each, roll all back on any failure.

    `release_tables` is the same call the deployed job's publish task makes; the pattern adds the
    check that each RESTORE brought back its blue version exactly.
    """
    result = release_tables(
        run.spark,
        release.version,
        {s.table: staged[s.table] for s in specs},
        live=env.live,
        verify=gold_verifier(run.spark, env.staging, specs),
        log_location=env.release_log,
    )
    for verification in result.verifications:
        p = verification.publication
        if p.table in result.restored:
            run.check(
                f"{p.table}: RESTORE brought back blue (v{p.blue_version}) exactly",
                restored_to_blue(run.spark, p, result.restored[p.table]),
                f"v{p.green_version} → RESTORE → v{result.restored[p.table]}",
            )
    return result.verifications


def redeploy_is_idempotent(run: PatternRun, env: Environments, release: Release) -> None:
    """Promoting the release that is already live writes nothing: the log and the versions say so."""
    tables = [spec.table for spec in release.specs]
    unchanged = confirm_already_live(run.spark, release.version, tables, live=env.live, log_location=env.release_log)
    run.check(
        f"deploying {release.version} again (it is live) writes nothing",
        len(unchanged) == len(release.specs) and all(unchanged.values()),
        f"{len(unchanged)} table(s) already live, versions unchanged",
    )


def summarize_releases(run: PatternRun, environments: Environments, outcomes: Sequence[ReleaseOutcome]) -> None:
    """Every promotion decision, and the production table's history that records them."""
    run.table([o.row() for o in outcomes], title="Releases")
    run.table(
        report.history_rows(run.spark, environments.live(GOLD_DAILY_SALES)),
        title=f"DESCRIBE HISTORY {GOLD_DAILY_SALES} (production)",
    )
    decisions = [o.decision for o in outcomes]
    run.check(
        "good release kept, subtle bug rolled back, contract breach blocked",
        decisions == ["kept (live)", "rolled back (RESTORE)", "blocked at staging"],
        " / ".join(decisions),
    )
    run.figure(
        "releases kept / rolled back / blocked",
        f"{decisions.count('kept (live)')} / {decisions.count('rolled back (RESTORE)')} / {decisions.count('blocked at staging')}",
        key=True,
    )


def serve_live_gold(run: PatternRun, env: Environments, target: migrations.MigrationTarget) -> None:
    """Migrate the production schema, load the live release as a candidate, publish it once dbt's tests pass."""
    session = target.session
    snowflake_migrations(run, target.env, session, SNOWFLAKE_DATABASES["prod"])
    location = env.live(GOLD_DAILY_SALES)
    version = live_version(run.spark, location)
    release = live_release(read_release_log(run.spark, env.release_log), GOLD_DAILY_SALES)
    assert version is not None and release is not None
    table = f"{SNOWFLAKE_DATABASES['prod']}.GOLD.DAILY_SALES"
    candidate = prepare_candidate(session, table)
    loaded = serve_daily_sales(run.spark, session, location, version, release=release.release, table=candidate)
    gated = publish_if_dbt_passes(session, target.endpoint, table, loaded, run.workdir / "dbt")
    run.table(gated.dbt.table(), title=f"dbt build --select {' '.join(DBT_SELECTION)} on {candidate}")
    decision = gated.decision
    run.check(
        "dbt gate: every dbt test on the candidate passed, so it was published", decision.publish, decision.reason
    )
    served = gated.served
    run.check(
        "Snowflake serves the live Delta version: same rows, same revenue, one release",
        served.served_rows == served.delta_rows
        and abs(served.served_revenue - served.delta_revenue) < 0.01
        and served.releases == (release.release, release.release),
        f"{served.served_rows} rows, revenue {served.served_revenue:,.2f}, release {served.releases[1]} (Delta v{version})",
    )
    monthly = session.fetch_df(
        f"SELECT MONTH, ORDERS, REVENUE FROM {SNOWFLAKE_DATABASES['prod']}.GOLD.MONTHLY_REVENUE ORDER BY MONTH"
    )
    run.table(monthly, title="GOLD.MONTHLY_REVENUE (the repeatable migration's view)")


def deployment_workflow(run: PatternRun) -> None:
    """Check the repository's own deploy workflow: structure here, everything else with actionlint."""
    text = WORKFLOW_FILE.read_text()
    document = yaml.safe_load(text)
    problems = workflow.workflow_problems(document, text)
    jobs = document.get("jobs") or {}
    run.table(workflow.job_rows(document), title=f"{WORKFLOW_FILE.relative_to(PROJECT_ROOT)}")
    run.check(
        "workflow: promotion order, protected environments, read-only token, pinned actions, secrets only from secrets",
        not problems,
        "; ".join(problems) or f"{len(jobs)} jobs",
    )
    binary = workflow.actionlint_binary(TOOLS_BIN)
    if binary:
        clean, finding = workflow.actionlint(binary, WORKFLOW_FILE)
        run.check("actionlint finds nothing in deploy.yml", clean, finding)
    else:
        run.note("actionlint is not installed (`make tools`): the workflow's expressions and shell are not linted here")
    run.cloud_only_step(
        "github",
        workflow.PRODUCTION_PROTECTION,
        "environment protection rules are repository settings on GitHub, not part of the workflow file",
        kind="environment protection for production",
        language="bash",
        purpose="deploy-production waits for a reviewer of the data-platform team and runs only from main",
    )


def body(run: PatternRun) -> None:
    unit_gate = gate.start_unit_gate(GATE_TESTS, PROJECT_ROOT, run.workdir / "gate")

    run.step("Jobs as code: a typed job rendered as an Asset Bundle", why="a job made by clicking cannot be reviewed")
    resolved = jobs_as_code(run)

    run.step("Infrastructure as code: Terraform for Databricks and Snowflake", why="what a release runs on is code too")
    infrastructure_as_code(run)

    run.step("Gate: the unit tests pass before anything is deployed", why="a release failing its tests stops here")
    result = gate.finish_unit_gate(unit_gate)
    run.check(
        "unit-test gate passed: every selected test ran and passed",
        result.exit_code == 0 and result.passed == len(GATE_TESTS) and result.failed == 0,
        result.summary,
    )
    run.figure("unit-test gate", result.seconds, "s", how="pytest in a fresh interpreter, as CI runs it")

    run.step("Deploy to staging: infrastructure, job, schema, one run", why="rehearse the release on its own data")
    with migrations.migration_target(run, SNOWFLAKE_DATABASES.values(), SNOWFLAKE_DATABASES["prod"]) as target:
        environments, world = deploy_to_staging(run, resolved, target.env, target.session)
        truth = expected_daily_sales(world)
        live_specs: dict[str, GoldSpec] = {}
        outcomes = []
        for release in releases():
            run.step(f"Release {release.version}: {release.change}", why="only audited, verified builds go live")
            outcomes.append(promote(run, environments, release, truth, live_specs))
        redeploy_is_idempotent(run, environments, outcomes[0].release)

        run.step("Promotion decisions and the production table's history", why="every decision is on record")
        summarize_releases(run, environments, outcomes)

        run.step("Serve from Snowflake: migrate, load, dbt test, publish", why="Snowflake serves what Delta has live")
        serve_live_gold(run, environments, target)

    run.step("The deployment workflow: test → staging → verify → production", why="the order of stages is code too")
    deployment_workflow(run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", choices=TARGETS, default="dev", help="bundle target deployed in cloud mode (default dev)"
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        type=bundle.variable_assignment,
        metavar="NAME=VALUE",
        help="a bundle variable",
    )
    parser.add_argument(
        "--write-bundle", action="store_true", help=f"regenerate {JOB_RESOURCE_FILE.name} from the typed job"
    )
    parser.add_argument(
        "--apply-infra", action="store_true", help="in cloud mode, run terraform init + apply for both stacks"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=5_000, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
