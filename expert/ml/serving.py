"""Online serving: one registered model version behind an HTTP endpoint on 127.0.0.1.

Why MLflow's own scoring app: `mlflow models serve` and Databricks Model Serving speak the same
protocol (`POST /invocations` with `{"dataframe_records": [...]}` → `{"predictions": [...]}`,
`GET /ping`). Running that app (`mlflow.pyfunc.scoring_server.init`) under uvicorn in a thread
gives the real protocol and the real input validation against the model's signature, without
a second Python process per endpoint. Port 0 lets the OS pick a free port, so two endpoints
(champion and challenger) never collide.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from expert.ml.tracking import trusted_model_loading
from expert.runtime.errors import ExpertError

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
        started = time.perf_counter()
        response = self._http.post(
            f"{self.url}/invocations", json={"dataframe_records": records}, timeout=REQUEST_TIMEOUT_S
        )
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
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
