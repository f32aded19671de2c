"""Online serving: one registered model version behind an HTTP endpoint on 127.0.0.1.

Why MLflow's own scoring app: `mlflow models serve` and Databricks Model Serving speak the same
protocol (`POST /invocations` with `{"dataframe_records": [...]}` → `{"predictions": [...]}`,
`GET /ping`). Running that app (`mlflow.pyfunc.scoring_server.init`) under uvicorn in a thread
gives the real protocol and the real input validation against the model's signature, without
a second Python process per endpoint. Port 0 lets the OS pick a free port, so two endpoints
(champion and challenger) never collide.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import requests

from expert.ml.tracking import TRUST_ENV, trusted_model_loading
from expert.runtime.errors import ExpertError
from expert.runtime.timing import stopwatch

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

STARTUP_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 30.0


class ModelEndpoint:
    """A model version served over HTTP until `stop()` (or the end of a `with` block)."""

    def __init__(self, model_uri: str, *, version: str) -> None:
        self.model_uri = model_uri
        self.version = version
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._http = requests.Session()
        self.latencies_ms: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ModelEndpoint:
        """Load the model version, start the scoring app and wait until it answers `/ping`."""
        import mlflow.pyfunc
        import uvicorn
        from mlflow.pyfunc import scoring_server

        with trusted_model_loading():
            model = mlflow.pyfunc.load_model(self.model_uri)
        config = uvicorn.Config(
            scoring_server.init(model), host="127.0.0.1", port=0, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"endpoint-v{self.version}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise ExpertError(
                    f"the endpoint for {self.model_uri} did not start",
                    "check that nothing blocks loopback sockets; rerun the pattern",
                )
            time.sleep(0.01)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        if self._http.get(f"{self.url}/ping", timeout=REQUEST_TIMEOUT_S).status_code != 200:
            raise ExpertError(f"the endpoint for {self.model_uri} does not answer /ping", "rerun the pattern")
        return self

    def predict(self, records: list[dict[str, Any]]) -> list[Any]:
        """One JSON request in MLflow's serving format; returns the `predictions` list."""
        with stopwatch() as watch:
            response = self._http.post(
                f"{self.url}/invocations", json={"dataframe_records": records}, timeout=REQUEST_TIMEOUT_S
            )
        self.latencies_ms.append(watch.seconds * 1000)
        if response.status_code != 200:
            raise ExpertError(
                f"endpoint v{self.version} answered HTTP {response.status_code}: {response.text[:200]}",
                "the request must match the model's signature (column names and types)",
            )
        return list(response.json()["predictions"])

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._http.close()

    def __enter__(self) -> ModelEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def endpoint_scores(endpoint: ModelEndpoint, frame: pd.DataFrame, columns: Sequence[str], batch: int) -> np.ndarray:
    """P(class 1) per row through the HTTP endpoint, `batch` JSON records per request."""
    records = frame[list(columns)].to_dict(orient="records")
    out: list[float] = []
    for start in range(0, len(records), batch):
        out.extend(p[1] for p in endpoint.predict(records[start : start + batch]))
    return np.asarray(out, dtype=float)


def model_serving_request(name: str, model_name: str, versions: dict[str, str], *, capture_schema: str) -> str:
    """The Databricks Model Serving create request: one served entity per role, traffic split evenly.

    Built with the SDK's own types and returned as the Python that creates the endpoint; inference
    tables (`auto_capture_config`) record every request and response in `capture_schema`.
    """
    from databricks.sdk.service.serving import (
        AutoCaptureConfigInput,
        EndpointCoreConfigInput,
        Route,
        ServedEntityInput,
        TrafficConfig,
    )

    share = 100 // len(versions)
    catalog, schema = capture_schema.split(".")
    config = EndpointCoreConfigInput(
        name=name,
        served_entities=[
            ServedEntityInput(
                name=role,
                entity_name=model_name,
                entity_version=version,
                workload_size="Small",
                scale_to_zero_enabled=True,
            )
            for role, version in versions.items()
        ],
        traffic_config=TrafficConfig(
            routes=[Route(traffic_percentage=share, served_entity_name=role) for role in versions]
        ),
        auto_capture_config=AutoCaptureConfigInput(
            catalog_name=catalog, schema_name=schema, table_name_prefix=name.replace("-", "_")
        ),
    )
    payload = json.dumps(config.as_dict(), indent=2)
    return (
        "import json\n\n"
        "from databricks.sdk import WorkspaceClient\n"
        "from databricks.sdk.service.serving import EndpointCoreConfigInput\n\n"
        f'config = EndpointCoreConfigInput.from_dict(json.loads("""\n{payload}\n"""))\n'
        f"WorkspaceClient().serving_endpoints.create(name={name!r}, config=config)"
    )


def spark_udf_scores(model_name: str, version: str, population: DataFrame, columns: Sequence[str]) -> DataFrame:
    """`population` with a `score` column: P(class 1) from one registered version, as a Spark UDF (batch).

    `mlflow.pyfunc.spark_udf` ships the model to the executors; `env_manager="local"` runs it in
    the Python environment the workers already have (on a cluster, pin the same requirements).
    """
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    with trusted_model_loading():
        udf = mlflow.pyfunc.spark_udf(
            population.sparkSession,
            f"models:/{model_name}/{version}",
            result_type="array<double>",
            env_manager="local",
            extra_env={TRUST_ENV: "true"},
        )
    inputs = F.struct(*[F.col(c) for c in columns])
    return population.withColumn("score", udf(inputs)[1])
