"""Property-based fuzzing of the public API from its own OpenAPI schema (schemathesis):
whatever the body, no 5xx, and every error names what is wrong. Runs against a real
orchestrator process and a real worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.processes import OrchestratorProcess, WorkerProcess


@pytest.fixture(scope="module")
def fuzz_schema(piper_worker: WorkerProcess) -> Iterator[schemathesis.schemas.BaseSchema]:
    orch = OrchestratorProcess(
        env={
            "ORCH_WORKERS": f'["{piper_worker.address}"]',
            # Short texts keep each valid case to a fraction of a second of synthesis.
            "ORCH_MAX_TEXT_CHARS": "120",
            "ORCH_LOG_LEVEL": "warning",
        }
    ).start()
    try:
        schema = schemathesis.openapi.from_url(orch.api + "/openapi.json")
        # Creating a session joins LiveKit, which is not running here (it has its own tests).
        yield schema.exclude(path="/sessions", method="POST")
    finally:
        orch.stop()


def test_no_input_makes_a_server_error(fuzz_schema: schemathesis.schemas.BaseSchema) -> None:
    """Every operation, 40 generated cases each (valid and invalid bodies, paths, headers)."""
    checked = []
    for result in fuzz_schema.get_all_operations():
        operation = result.ok()
        checked.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def call(case: schemathesis.Case) -> None:
            response = case.call(timeout=60)
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            if response.status_code >= 400:
                error = response.json()["error"]
                assert error["message"] and error["code"], response.text

        call()
    assert "POST /synthesize" in checked and "POST /v1/audio/speech" in checked
