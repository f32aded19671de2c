"""dbt, run for real: the lakehouse project parses, builds green on the local engine, and its tests bite.

The gold star integration/01 publishes (LAKEHOUSE.GOLD) is seeded from the generator's clean world
with the connector's `write_pandas` (in-process fakesnow, as the pattern writes it); dbt then reaches
the same database files through fakesnow's server on 127.0.0.1 with the real dbt-snowflake adapter.
Tests that run dbt need its own virtualenv (`bash scripts/install-dbt.sh`): they skip without it,
and fail without it when `EXPERT_REQUIRE_TOOLS=1` (CI).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from expert import PROJECT_ROOT
from expert.runtime import data
from expert.runtime.config import SNOWFLAKE, resolve_service
from expert.runtime.dbt import (
    DBT_PROJECT,
    SECRET_FIELDS,
    DbtResult,
    NodeResult,
    dbt_build,
    dbt_databricks_step,
    dbt_docs,
    dbt_executable,
    dbt_gate,
    dbt_parse,
    run_dbt,
    write_profile,
)
from expert.runtime.errors import ExpertError
from expert.runtime.snowflake import SnowflakeEndpoint, snowflake_endpoint, snowflake_session

LOCAL = resolve_service(SNOWFLAKE, {})
GOLD_DDL = {
    "FACT_SALES": "ORDER_ID NUMBER(19, 0), ORDER_DATE DATE, CUSTOMER_ID NUMBER(19, 0), PRODUCT_ID NUMBER(19, 0), "
    "QUANTITY NUMBER(10, 0), AMOUNT NUMBER(18, 2), ORDER_STATUS VARCHAR, PAYMENT_METHOD VARCHAR, PAYMENT_STATUS VARCHAR",
    "DIM_PRODUCT": "PRODUCT_ID NUMBER(19, 0), NAME VARCHAR, CATEGORY VARCHAR, LIST_PRICE NUMBER(18, 2)",
    "DIM_CUSTOMER": "CUSTOMER_ID NUMBER(19, 0), COUNTRY VARCHAR, CITY VARCHAR, SEGMENT VARCHAR",
    "DAILY_CATEGORY": "ORDER_DATE DATE, CATEGORY VARCHAR, ORDERS NUMBER(19, 0), UNITS NUMBER(19, 0), "
    "REVENUE NUMBER(28, 2), CAPTURED_REVENUE NUMBER(28, 2)",
    "DAILY_SALES": "ORDER_DATE DATE, ORDERS NUMBER(19, 0), UNITS NUMBER(19, 0), REVENUE NUMBER(18, 2), "
    "CUSTOMERS NUMBER(19, 0), RETURNED_ORDERS NUMBER(19, 0)",
}
"""The published gold tables, typed as integration/01's `snowflake_ddl` types them from the Delta schemas."""


def require_dbt() -> Path:
    """dbt's executable; skips without it, unless CI demands every tool (as `require_tool` does)."""
    try:
        return dbt_executable()
    except ExpertError as exc:
        if os.environ.get("EXPERT_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{exc.message}; EXPERT_REQUIRE_TOOLS=1 makes this a failure ({exc.fix})")
        pytest.skip(f"{exc.message}; {exc.fix}")


def gold_star(world: data.EcommerceWorld) -> dict[str, pd.DataFrame]:
    """The gold star of a clean world: a fact at order grain with its payment, two dimensions, two aggregates.

    Every tenth order has no payment (`none` / `missing`), as orders whose payment is in quarantine do.
    """
    orders, payments = world.orders, world.payments[world.payments["order_id"] % 10 != 0]
    fact = orders.merge(payments[["order_id", "method", "status"]], on="order_id", how="left", suffixes=("", "_pay"))
    fact = pd.DataFrame(
        {
            "ORDER_ID": fact["order_id"],
            "ORDER_DATE": fact["order_ts"].dt.date,
            "CUSTOMER_ID": fact["customer_id"],
            "PRODUCT_ID": fact["product_id"],
            "QUANTITY": fact["quantity"],
            "AMOUNT": fact["amount"],
            "ORDER_STATUS": fact["status"],
            "PAYMENT_METHOD": fact["method"].fillna("none"),
            "PAYMENT_STATUS": fact["status_pay"].fillna("missing"),
        }
    )
    products = pd.DataFrame(
        {
            "PRODUCT_ID": world.products["product_id"],
            "NAME": world.products["name"],
            "CATEGORY": world.products["category"],
            "LIST_PRICE": world.products["price"],
        }
    )
    customers = world.customers[["customer_id", "country", "city", "segment"]].rename(columns=str.upper)
    joined = fact.merge(products[["PRODUCT_ID", "CATEGORY"]], on="PRODUCT_ID")
    joined["CAPTURED"] = joined["AMOUNT"].where(joined["PAYMENT_STATUS"] == "captured", 0.0)
    daily_category = (
        joined.groupby(["ORDER_DATE", "CATEGORY"])
        .agg(
            ORDERS=("ORDER_ID", "count"),
            UNITS=("QUANTITY", "sum"),
            REVENUE=("AMOUNT", "sum"),
            CAPTURED_REVENUE=("CAPTURED", "sum"),
        )
        .reset_index()
    )
    fact["RETURNED"] = (fact["ORDER_STATUS"] == "returned").astype(int)
    daily_sales = (
        fact.groupby("ORDER_DATE")
        .agg(
            ORDERS=("ORDER_ID", "count"),
            UNITS=("QUANTITY", "sum"),
            REVENUE=("AMOUNT", "sum"),
            CUSTOMERS=("CUSTOMER_ID", "nunique"),
            RETURNED_ORDERS=("RETURNED", "sum"),
        )
        .reset_index()
    )
    return {
        "FACT_SALES": fact.drop(columns="RETURNED"),
        "DIM_PRODUCT": products,
        "DIM_CUSTOMER": customers,
        "DAILY_CATEGORY": daily_category,
        "DAILY_SALES": daily_sales,
    }


def publish(db_path: Path, tables: dict[str, pd.DataFrame], *statements: str) -> None:
    """Publish the star to LAKEHOUSE.GOLD as integration/01 does (DDL, then write_pandas), then run `statements`."""
    with snowflake_session(LOCAL, db_path=db_path, database="LAKEHOUSE", schema="GOLD") as session:
        session.execute("CREATE DATABASE IF NOT EXISTS LAKEHOUSE")
        session.execute("CREATE SCHEMA IF NOT EXISTS LAKEHOUSE.GOLD")
        for name, frame in tables.items():
            session.execute(f"CREATE OR REPLACE TABLE {name} ({GOLD_DDL[name]})")
            session.write_pandas(frame, name, auto_create_table=False)
        for statement in statements:
            session.execute(statement)


@pytest.fixture
def star() -> dict[str, pd.DataFrame]:
    return gold_star(data.EcommerceWorld(3_000, seed=11))


@pytest.fixture
def endpoint_for(workdir: Path) -> Iterator:
    """Open fakesnow's server on this test's Snowflake files (after the star is published)."""
    stack: list = []

    def open_endpoint() -> SnowflakeEndpoint:
        manager = snowflake_endpoint(LOCAL, db_path=workdir / "snowflake", database="LAKEHOUSE", schema="GOLD")
        stack.append(manager)
        return manager.__enter__()

    yield open_endpoint
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


def node(result: DbtResult, name: str) -> NodeResult:
    (found,) = [n for n in result.nodes if n.name == name]
    return found


# ---------------------------------------------------------------------------------- the project


def test_project_parses_without_a_database(workdir: Path) -> None:
    """`dbt parse` accepts the project; the profile points at a port where nothing listens."""
    require_dbt()
    unreachable = SnowflakeEndpoint(
        "local",
        "LAKEHOUSE",
        "GOLD",
        {"account": "fakesnow", "user": "fake", "password": "snow", "host": "127.0.0.1", "port": 9, "protocol": "http"},
    )
    summary = dbt_parse(unreachable, workdir / "dbt")
    assert summary.models == (
        "bi_daily_revenue",
        "bi_payment_mix",
        "bi_revenue_by_category",
        "bi_revenue_by_segment",
        "stg_customers",
        "stg_products",
        "stg_sales",
    )
    assert summary.sources == tuple(f"gold.{t.lower()}" for t in sorted(GOLD_DDL))
    kinds = {t.split("_")[0] for t in summary.tests}
    assert {"unique", "not", "relationships", "accepted", "source", "assert"} <= kinds


def test_accepted_values_are_the_generators_vocabulary() -> None:
    """The accepted values dbt enforces are the values the seeded world produces, plus gold's placeholders."""
    schema = yaml.safe_load((DBT_PROJECT / "models" / "staging" / "_staging.yml").read_text())
    accepted = {
        (model["name"], column["name"]): set(test["accepted_values"]["arguments"]["values"])
        for model in schema["models"]
        for column in model["columns"]
        for test in column.get("data_tests", [])
        if isinstance(test, dict) and "accepted_values" in test
    }
    world = data.EcommerceWorld(3_000, seed=11)
    assert accepted[("stg_customers", "segment")] == set(data.SEGMENTS)
    assert accepted[("stg_products", "category")] == set(data.CATEGORIES)
    assert accepted[("stg_sales", "payment_method")] == {*data.PAYMENT_METHODS, "none"}
    assert accepted[("stg_sales", "payment_status")] == {*world.payments["status"].unique(), "missing"}
    assert accepted[("stg_sales", "order_status")] == set(world.orders["status"].unique())


# ---------------------------------------------------------------------------------- builds


def test_build_is_green_and_the_marts_equal_the_fact(
    workdir: Path, star: dict[str, pd.DataFrame], endpoint_for
) -> None:
    """Every model builds and every test passes; the marts hold what the fact says; an incremental rebuild
    agrees; the docs site is generated, and on the local engine its catalog lacks the (view) staging models."""
    require_dbt()
    publish(workdir / "snowflake", star)
    endpoint = endpoint_for()
    result = dbt_build(endpoint, workdir / "dbt")
    assert result.passed, [(n.name, n.message) for n in result.failures]
    assert len(result.models) == 7 and len(result.tests) >= 40
    assert {n.status for n in result.tests} == {"pass"} and not result.skipped
    fact = star["FACT_SALES"]
    assert node(result, "stg_sales").rows == len(fact)
    assert node(result, "bi_daily_revenue").rows == fact["ORDER_DATE"].nunique()
    assert node(result, "bi_revenue_by_category").rows == star["DIM_PRODUCT"]["CATEGORY"].nunique()
    with endpoint.session() as session:
        first = session.fetch_df("SELECT * FROM LAKEHOUSE.MARTS.BI_DAILY_REVENUE ORDER BY ORDER_DATE")
        mix = session.fetch("SELECT * FROM LAKEHOUSE.MARTS.BI_PAYMENT_MIX WHERE PAYMENT_STATUS = 'missing'")
    assert float(first["REVENUE"].astype(float).sum()) == pytest.approx(float(fact["AMOUNT"].sum()), abs=0.005)
    assert sum(int(r["ORDERS"]) for r in mix) == int((fact["PAYMENT_STATUS"] == "missing").sum()) > 0
    decision = dbt_gate(result)
    assert decision.publish and not decision.blocking

    again = dbt_build(endpoint, workdir / "dbt", select=("bi_daily_revenue",))
    assert again.passed and [n.name for n in again.models] == ["bi_daily_revenue"]
    lookback = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text())["vars"]["lookback_days"]
    days = pd.to_datetime(fact["ORDER_DATE"])
    trailing = days[days >= days.max() - pd.Timedelta(days=lookback)].nunique()
    assert node(again, "bi_daily_revenue").message == f"SUCCESS {trailing}", "only the trailing days are rebuilt"
    with endpoint.session() as session:
        second = session.fetch_df("SELECT * FROM LAKEHOUSE.MARTS.BI_DAILY_REVENUE ORDER BY ORDER_DATE")
    pd.testing.assert_frame_equal(first, second)

    docs = dbt_docs(endpoint, workdir / "dbt")
    assert docs.index.is_file() and docs.result.exit_code == 0
    assert docs.catalogued == ("bi_daily_revenue", "bi_payment_mix", "bi_revenue_by_category", "bi_revenue_by_segment")
    assert docs.missing == ("stg_customers", "stg_products", "stg_sales"), "fakesnow's catalog query finds no views"


def test_broken_rows_fail_the_named_tests_and_the_gate_blocks(
    workdir: Path, star: dict[str, pd.DataFrame], endpoint_for
) -> None:
    """A duplicated customer key and an unknown payment status: each fails its own test, and nothing downstream builds."""
    require_dbt()
    publish(
        workdir / "snowflake",
        star,
        "INSERT INTO DIM_CUSTOMER SELECT * FROM DIM_CUSTOMER WHERE CUSTOMER_ID = 1",
        "UPDATE FACT_SALES SET PAYMENT_STATUS = 'refunded' WHERE ORDER_ID = 2",
    )
    result = dbt_build(endpoint_for(), workdir / "dbt")
    failed = {n.name: n for n in result.failures}
    assert set(failed) == {
        "source_unique_gold_dim_customer_customer_id",
        "accepted_values_stg_sales_payment_status__captured__failed__missing",
    }
    assert all(n.rows == 1 for n in failed.values()), "one offending key, one offending value"
    assert result.exit_code == 1 and not result.passed
    skipped = {n.name for n in result.skipped}
    assert {"stg_customers", "bi_revenue_by_segment", "bi_daily_revenue", "assert_marts_add_up_to_fact"} <= skipped
    decision = dbt_gate(result)
    assert not decision.publish
    assert set(decision.failing_tests) == set(failed)
    assert (
        "source_unique_gold_dim_customer_customer_id" in decision.reason
        and "downstream nodes skipped" in decision.reason
    )


def test_release_gate_on_one_source_blocks_a_bad_daily_sales(
    workdir: Path, star: dict[str, pd.DataFrame], endpoint_for
) -> None:
    """databricks/03's step: test only the staged gold_daily_sales; a day without revenue blocks the publish."""
    require_dbt()
    publish(
        workdir / "snowflake",
        star,
        "UPDATE DAILY_SALES SET REVENUE = NULL WHERE ORDER_DATE = (SELECT MIN(ORDER_DATE) FROM DAILY_SALES)",
    )
    result = dbt_build(endpoint_for(), workdir / "dbt", select=("source:gold.daily_sales",))
    assert not result.models, "selecting a source builds no model"
    assert {n.name for n in result.tests} == {
        "source_unique_gold_daily_sales_order_date",
        "source_not_null_gold_daily_sales_order_date",
        "source_not_null_gold_daily_sales_orders",
        "source_not_null_gold_daily_sales_revenue",
    }, "cautious selection leaves out the reconciliation that reads an unbuilt mart"
    decision = dbt_gate(result)
    assert not decision.publish and decision.failing_tests == ("source_not_null_gold_daily_sales_revenue",)


# ---------------------------------------------------------------------------------- secrets, errors, the gate


def cloud_endpoint(secret: str) -> SnowflakeEndpoint:
    from expert.runtime.snowflake import _cloud_kwargs

    config = resolve_service(
        SNOWFLAKE,
        {
            "SNOWFLAKE_ACCOUNT": "myorg-myaccount",
            "SNOWFLAKE_USER": "LAKEHOUSE_CI",
            "SNOWFLAKE_PASSWORD": secret,
            "SNOWFLAKE_ROLE": "TRANSFORMER",
            "SNOWFLAKE_WAREHOUSE": "TRANSFORM_WH",
        },
    )
    return SnowflakeEndpoint("cloud", "LAKEHOUSE", "GOLD", _cloud_kwargs(config, "LAKEHOUSE", "GOLD"))


FAKE_DBT = """#!{python}
import json, os, pathlib, sys
args = sys.argv[1:]
target = pathlib.Path(args[args.index("--target-path") + 1])
target.mkdir(parents=True, exist_ok=True)
pathlib.Path(os.environ["FAKE_DBT_RECORD"]).write_text(json.dumps({{"argv": sys.argv, "env": dict(os.environ)}}))
print("1 of 1 OK")
(target / "run_results.json").write_text(json.dumps({{"results": [{{"unique_id": "test.lakehouse.unique_x_id.1",
    "status": "pass", "execution_time": 0.1, "failures": 0, "message": None, "adapter_response": {{}}}}]}}))
"""


def test_cloud_profile_keeps_the_secret_out_of_file_argv_and_output(
    tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cloud mode: the password reaches dbt only through its environment; the file is 0600 and names a variable."""
    secret = "correct-horse-battery-staple-9"
    endpoint = cloud_endpoint(secret)
    fake = tmp_path / "venv" / "bin" / "dbt"
    fake.parent.mkdir(parents=True)
    fake.write_text(FAKE_DBT.format(python=sys.executable))
    fake.chmod(0o755)
    record = tmp_path / "record.json"
    monkeypatch.setenv("DBT_VENV", str(tmp_path / "venv"))
    monkeypatch.setenv("FAKE_DBT_RECORD", str(record))

    profile = write_profile(endpoint, workdir / "dbt", schema="MARTS")
    print(profile.describe(), profile)
    result = run_dbt(["build"], profile, workdir / "dbt")
    print(result)

    text = profile.path.read_text()
    assert stat.S_IMODE(profile.path.stat().st_mode) == 0o600
    output = yaml.safe_load(text)["lakehouse"]["outputs"]["cloud"]
    assert secret not in text and output["password"] == '{{ env_var("DBT_ENV_SECRET_SNOWFLAKE_PASSWORD") }}'
    assert (output["account"], output["role"], output["warehouse"]) == (
        "myorg-myaccount",
        "TRANSFORMER",
        "TRANSFORM_WH",
    )
    seen = json.loads(record.read_text())
    assert not any(secret in arg for arg in seen["argv"])
    assert seen["env"][SECRET_FIELDS["password"][1]] == secret and "PYTHONPATH" not in seen["env"]
    assert result.passed and result.tests[0].name == "unique_x_id"
    printed = capsys.readouterr().out
    assert "myorg-myaccount.snowflakecomputing.com as LAKEHOUSE_CI" in printed and secret not in printed
    assert "auth: password (secret in $DBT_ENV_SECRET_SNOWFLAKE_PASSWORD)" in printed


def test_a_dbt_that_hangs_is_stopped_at_the_timeout(
    tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "venv" / "bin" / "dbt"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("DBT_VENV", str(tmp_path / "venv"))
    profile = write_profile(cloud_endpoint("unused-secret"), workdir / "dbt", schema="MARTS")
    started = time.perf_counter()
    with pytest.raises(ExpertError) as raised:
        run_dbt(["build"], profile, workdir / "dbt", timeout=1)
    assert time.perf_counter() - started < 10
    assert "did not finish within 1 s" in raised.value.message and "dbt.log" in raised.value.message


def test_missing_dbt_is_a_clear_error_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_VENV", str(tmp_path / "nowhere"))
    with pytest.raises(ExpertError) as raised:
        dbt_executable()
    assert raised.value.exit_code == 2
    assert str(tmp_path / "nowhere" / "bin" / "dbt") in raised.value.message
    assert "make setup" in raised.value.fix and "scripts/install-dbt.sh" in raised.value.fix


def test_a_project_dbt_cannot_read_names_the_file(workdir: Path, tmp_path: Path) -> None:
    """Bad input: a model whose YAML is broken stops dbt before any node, and the error says which file."""
    require_dbt()
    broken = tmp_path / "project"
    (broken / "models").mkdir(parents=True)
    (broken / "dbt_project.yml").write_text((DBT_PROJECT / "dbt_project.yml").read_text())
    (broken / "models" / "broken.yml").write_text("version: 2\nmodels:\n  - name: x\n    description: a: b\n")
    endpoint = SnowflakeEndpoint(
        "local", "LAKEHOUSE", "GOLD", {"account": "fakesnow", "user": "fake", "password": "snow", "port": 9}
    )
    profile = write_profile(endpoint, workdir / "dbt", schema="MARTS")
    with pytest.raises(ExpertError) as raised:
        run_dbt(["parse"], profile, workdir / "dbt", project_dir=broken)
    assert "broken.yml" in raised.value.message and "Syntax error" in raised.value.message


def test_an_open_in_process_session_is_refused_with_the_fix(workdir: Path, star: dict[str, pd.DataFrame]) -> None:
    """The local server cannot attach files an in-process session holds: say so, instead of dbt's connect retry."""
    publish(workdir / "snowflake", star)
    with (
        snowflake_session(LOCAL, db_path=workdir / "snowflake", database="LAKEHOUSE", schema="GOLD"),
        snowflake_endpoint(LOCAL, db_path=workdir / "snowflake", database="LAKEHOUSE", schema="GOLD") as endpoint,
        pytest.raises(ExpertError) as raised,
    ):
        dbt_build(endpoint, workdir / "dbt")
    assert "cannot attach" in raised.value.message and "run.snowflake(endpoint=endpoint)" in raised.value.fix


def test_databricks_step_is_a_profile_and_a_command_for_this_project() -> None:
    """The cloud-only Databricks step: valid YAML for the project's profile, vars the project declares."""
    profile, command = dbt_databricks_step(catalog="main", gold_schema="lakehouse")
    output = yaml.safe_load(profile)["lakehouse"]["outputs"]["databricks"]
    assert output["type"] == "databricks" and output["token"] == "{{ env_var('DBT_ENV_SECRET_DATABRICKS_TOKEN') }}"
    declared = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text())["vars"]
    variables = json.loads(command.split("--vars ")[1].strip("'"))
    assert set(variables) <= set(declared) and variables["gold_prefix"] == "gold_"


def result_of(*nodes: NodeResult, exit_code: int = 0) -> DbtResult:
    return DbtResult(("build",), exit_code, 1.0, nodes, Path("target"), Path("dbt.log"))


def test_gate_blocks_on_failures_errors_and_no_tests() -> None:
    ok_test = NodeResult("test.p.t_ok.1", "t_ok", "test", "pass", 0.1, 0, "", None)
    failing = NodeResult(
        "test.p.t_bad.1", "t_bad", "test", "fail", 0.1, 3, "Got 3 results, configured to fail if != 0", None
    )
    broken_model = NodeResult(
        "model.p.m.1", "m", "model", "error", 0.1, None, "Database Error in model m (models/m.sql)", "DB.S.M"
    )
    downstream = NodeResult("model.p.n.1", "n", "model", "skipped", 0.0, None, "", "DB.S.N")

    assert dbt_gate(result_of(ok_test)).publish
    decision = dbt_gate(result_of(ok_test, failing, downstream, exit_code=1))
    assert not decision.publish and decision.failing_tests == ("t_bad",)
    assert "t_bad (fail: Got 3 results" in decision.reason and "1 downstream nodes skipped" in decision.reason
    errored = dbt_gate(result_of(ok_test, broken_model, exit_code=1))
    assert not errored.publish and errored.blocking == (broken_model,) and "models/m.sql" in errored.reason
    assert not dbt_gate(result_of(NodeResult("model.p.m.1", "m", "model", "success", 0.1, 5, "", "DB.S.M"))).publish
    assert not dbt_gate(result_of(ok_test, exit_code=2)).publish


def test_install_script_is_quick_when_installed() -> None:
    """`make setup` calls it every time: with the pinned dbt in place it only checks a stamp and says so."""
    venv = require_dbt().parent.parent
    pins = subprocess.run(
        "cat dbt/requirements.txt dbt/constraints.txt | cksum",
        shell=True,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    if not (venv / f".installed-{pins}").is_file():
        pytest.skip(f"{venv} was not installed from the committed pins (no .installed-{pins}): rerun the script")
    started = time.perf_counter()
    completed = subprocess.run(
        ["bash", "scripts/install-dbt.sh"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DBT_VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    seconds = time.perf_counter() - started
    assert completed.returncode == 0 and seconds < 5, (completed.returncode, seconds, completed.stdout)
    assert "already installed" in completed.stdout and "dbt-core 1.11.16 + dbt-snowflake 1.12.4" in completed.stdout


def test_databricks_03_publishes_only_a_candidate_that_passes_dbt(workdir: Path) -> None:
    """The serve step's gate: a candidate with a duplicated day fails dbt's unique test and the served
    release stays as it was; a clean candidate replaces the served rows in one go."""
    import snowflake.connector

    from expert.release.serve import Served, prepare_candidate, publish_if_dbt_passes
    from expert.runtime.snowflake import SnowflakeSession, local_server

    require_dbt()
    table = "ANALYTICS_PROD.GOLD.DAILY_SALES"
    columns = GOLD_DDL["DAILY_SALES"] + ", RELEASE VARCHAR, DELTA_VERSION NUMBER(19, 0)"
    days = [f"2026-01-{day:02d}" for day in range(1, 6)]
    with local_server() as server:
        session = SnowflakeSession(snowflake.connector.connect(**server), "local", "ANALYTICS_PROD", "PUBLIC")
        endpoint = SnowflakeEndpoint("local", "ANALYTICS_PROD", "GOLD", server)
        session.execute("CREATE DATABASE IF NOT EXISTS ANALYTICS_PROD")
        session.execute("CREATE SCHEMA IF NOT EXISTS ANALYTICS_PROD.GOLD")
        session.execute(f"CREATE OR REPLACE TABLE {table} ({columns})")
        session.execute(
            f"INSERT INTO {table} VALUES " + ", ".join(f"('{d}', 2, 3, 10.00, 2, 0, '1.0.0', 1)" for d in days)
        )

        def candidate_rows(*rows: str) -> Served:
            candidate = prepare_candidate(session, table)
            session.execute(f"INSERT INTO {candidate} VALUES " + ", ".join(rows))
            return Served(len(rows), 20.0 * len(rows), 0, 0.0, ("1.1.0", "1.1.0"))

        twice = [f"('{d}', 4, 6, 20.00, 3, 0, '1.1.0', 2)" for d in [*days, days[0]]]
        blocked = publish_if_dbt_passes(session, endpoint, table, candidate_rows(*twice), workdir / "dbt")
        assert not blocked.decision.publish
        assert blocked.decision.failing_tests == ("source_unique_gold_daily_sales_order_date",)
        assert (blocked.served.served_rows, blocked.served.served_revenue) == (5, 50.0)
        assert blocked.served.releases == ("1.0.0", "1.0.0"), "consumers still read the previous release"

        clean = [f"('{d}', 4, 6, 20.00, 3, 0, '1.1.0', 2)" for d in days]
        published = publish_if_dbt_passes(session, endpoint, table, candidate_rows(*clean), workdir / "dbt")
        assert published.decision.publish, published.decision.reason
        assert (published.served.served_rows, published.served.served_revenue) == (5, 100.0)
        assert published.served.releases == ("1.1.0", "1.1.0")
        session.connection.close()


def test_a_connections_toml_connection_gives_dbt_its_password_through_the_environment(
    tmp_path: Path, workdir: Path
) -> None:
    """A learner set up with `connections.toml` only: dbt gets the account from it, and its password
    as a DBT_ENV_SECRET_ variable, never in profiles.yml."""
    from expert.runtime.snowflake import _cloud_kwargs

    secret = "toml-only-secret-42"
    home = tmp_path / "snowflake"
    home.mkdir()
    connections = home / "connections.toml"
    connections.write_text(
        f'[analytics]\naccount = "myorg-toml"\nuser = "DBT_USER"\npassword = "{secret}"\nwarehouse = "WH"\n'
    )
    connections.chmod(0o600)
    from expert.runtime.config import load_settings

    environ = {"HOME": str(tmp_path), "SNOWFLAKE_HOME": str(home), "SNOWFLAKE_DEFAULT_CONNECTION_NAME": "analytics"}
    config = load_settings(environ=environ, env_file=Path("/nonexistent/.env")).snowflake
    assert config.profile == "analytics"
    endpoint = SnowflakeEndpoint("cloud", "LAKEHOUSE", "GOLD", _cloud_kwargs(config, "LAKEHOUSE", "GOLD"))
    assert "password" not in endpoint.connect_args, "the connector reads the secret from the file itself"

    profile = write_profile(endpoint, workdir / "dbt", schema="MARTS")
    text = profile.path.read_text()
    output = yaml.safe_load(text)["lakehouse"]["outputs"]["cloud"]
    assert (output["account"], output["user"], output["warehouse"]) == ("myorg-toml", "DBT_USER", "WH")
    assert secret not in text and output["password"] == '{{ env_var("DBT_ENV_SECRET_SNOWFLAKE_PASSWORD") }}'
    assert profile.secret_env == {"DBT_ENV_SECRET_SNOWFLAKE_PASSWORD": secret}
