"""`expert bench` turns measurements into BENCHMARKS.md: ratios and targets come from the inputs."""

from __future__ import annotations

from expert.bench import render


def _scale(rows: int, seconds: float) -> dict[str, float | int]:
    third = seconds / 3
    return {
        "rows": rows,
        "bronze_rows": rows,
        "land": 0.1,
        "bronze": third,
        "silver": third,
        "gold": third,
        "duckdb_gold": 0.01,
        "spark_revenue": 10.0,
        "duckdb_revenue": 10.0,
    }


def _results() -> dict:
    spread = {"median": 1.0, "min": 1.0, "max": 1.0, "n": 1}
    return {
        "machine": {"cores": "2"},
        "startup": {"spark_cold": spread, "spark_warm": spread, "snowflake_local": spread},
        "run_all": {
            "total_seconds": 100.0,
            "spark_start_seconds": 9.0,
            "process_seconds": 102.0,
            "patterns": [
                {
                    "id": "databricks/01",
                    "result": "passed",
                    "seconds": 30.0,
                    "checks_passed": 5,
                    "checks": [{"name": f"invariant {i}", "passed": True, "detail": ""} for i in range(5)],
                    "figures": [
                        {"label": "files read before Z-order", "value": 48, "unit": "of 48", "how": "m", "key": True},
                        {"label": "files read after Z-order", "value": 3, "unit": "of 12", "how": "m", "key": True},
                    ],
                }
            ],
        },
        "standalone": {"databricks/01": {"seconds": 45.0, "exit_code": 0}},
        "scales": [_scale(1_000_000, 60.0), _scale(10_000_000, 300.0)],
    }


def test_report_computes_ratios_and_targets_from_the_measurements() -> None:
    text = render(_results())
    assert "| databricks/01 | passed | 30.0 | 45.0 | 1.5x | 5/5 | – |" in text
    assert "Pipeline time growth per 10x data: 5.00x." in text
    assert "| medallion 1e6 → 1e7 grows ≤ 10x | 5.00x |" in text
    assert "| Z-order cuts files read ≥ 5x | 16.0x (48 → 3 files) |" in text
    assert "| one pattern standalone ≤ 20 s | 0 of 1 within; slowest databricks/01 45.0 s |" in text
    assert "| whole curriculum in one process ≤ 120 s | 100.0 s |" in text


def test_report_says_what_it_did_not_measure() -> None:
    results = _results()
    results["scales"] = [_scale(100_000, 20.0)]
    text = render(results)
    assert "not measured in this run" in text


def test_a_size_that_did_not_complete_is_reported_not_hidden() -> None:
    results = _results()
    results["scales"] = [_scale(1_000_000, 60.0)]
    results["scale_failures"] = [{"rows": 10_000_000, "error": "child failed\njava.lang.OutOfMemoryError: heap"}]
    text = render(results)
    assert "Medallion at 10,000,000 rows did not complete on this machine: `java.lang.OutOfMemoryError: heap`" in text
    assert "| medallion 1e6 → 1e7 grows ≤ 10x | not measured: the run at 10,000,000 rows did not complete |" in text


def test_exercise_streaming_and_curriculum_goals_are_judged_from_the_measurements() -> None:
    results = _results()
    results["run_all"]["patterns"][0].update(delta_commits=12, delta_merges=2)
    results["exercises"] = {
        "snowflake/01.1": {
            "engine": "snowflake",
            "cold_s": 2.5,
            "cold_exit_code": 0,
            "watch_s": 0.4,
            "watch_passed": True,
        },
        "snowflake/01.2": {
            "engine": "snowflake",
            "cold_s": 3.5,
            "cold_exit_code": 0,
            "watch_s": 0.5,
            "watch_passed": True,
        },
        "databricks/01.1": {
            "engine": "spark",
            "cold_s": 30.0,
            "cold_exit_code": 1,
            "watch_s": 4.0,
            "watch_passed": False,
            "cold_server_s": 12.5,
            "cold_server_exit_code": 0,
        },
        "databricks/01.2": {
            "engine": "spark",
            "cold_s": 19.0,
            "cold_exit_code": 0,
            "watch_s": 1.0,
            "watch_passed": True,
            "cold_server_s": 21.0,
            "cold_server_exit_code": 2,
        },
    }
    results["exercise_server"] = {"up_s": 9.84, "up_exit_code": 0}
    results["streaming"] = {
        "realtime": [
            {
                "offered_per_s": 5000,
                "sent_per_s": 5000,
                "live_per_s": 5000,
                "measured": 1,
                "missing": 0,
                "p50_ms": 10.0,
                "p95_ms": 60.0,
                "p99_ms": 90.0,
                "warmup_s": 20.0,
                "measured_s": 10.0,
            },
            {
                "offered_per_s": 10000,
                "sent_per_s": 7000,
                "live_per_s": 7000,
                "measured": 1,
                "missing": 9,
                "p50_ms": None,
                "p95_ms": None,
                "p99_ms": None,
                "warmup_s": 20.0,
                "measured_s": 10.0,
            },
        ],
        "drain": {"records_per_s": 2500.0},
    }
    text = render(results)
    assert "| databricks/01 | passed | 30.0 | 45.0 | 1.5x | 5/5 | 12 / 2 |" in text
    assert "| databricks/01.1 | spark | 30.00 | 12.50 | 4.00 | no (exit 1) |" in text
    assert "| databricks/01.2 | spark | 19.00 | 21.00 | 1.00 | no (exit 2) |" in text
    assert "| snowflake/01.1 | snowflake | 2.50 | – | 0.40 | yes |" in text
    assert "`expert up` started the server in 9.8 s (exit 0)." in text
    assert "| Snowflake/Python exercise check ≤ 3 s cold | 1 of 2 within; slowest snowflake/01.2 3.50 s |" in text
    assert "| Spark exercise check ≤ 20 s cold | 1 of 2 within; slowest databricks/01.1 30.00 s |" in text
    assert (
        "| Spark exercise check ≤ 20 s cold, with `expert up`'s server running | 1 of 2 within; "
        "slowest databricks/01.2 21.00 s |" in text
    )
    assert "| any exercise re-check ≤ 3 s in watch mode | 3 of 4 within; slowest databricks/01.1 4.00 s |" in text
    assert "| Real-time Mode p95 ≤ 50 ms at 5,000 events/s (alone) | 60 ms |" in text
    assert "(aim ≥ 10,000/s) | 5,000 events/s (highest rate offered: 10,000) |" in text
    assert "| backlog drain ≥ 2,000 records/s | 2,500 records/s |" in text
    assert "each offered rate for a 20 s warm-up (sent, not measured" in text
    assert "then 10 s measured (to the producer's last paced send)" in text
    assert "| each Spark pattern ≤ 40 s inside `run all` | 1 of 1 within; over: none |" in text


def test_the_start_up_table_says_whether_spark_mapped_the_class_archive() -> None:
    results = _results()
    assert "no JVM class archive (`make setup` builds one)" in render(results)
    results["startup"]["class_archive"] = True
    assert "Spark's classes mapped from the JVM class archive `make setup` built" in render(results)
