"""Which worker failures before first audio move the utterance to another worker."""

from __future__ import annotations

import grpc
import pytest

from orchestrator.workers.calls import retryable


@pytest.mark.parametrize(
    ("code", "details", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, "worker is draining", True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full", True),
        # grpc-core's own error when a write raced the worker's end of the stream.
        (grpc.StatusCode.INTERNAL, "Internal error from Core", True),
        # The worker's engine failed on this text: another worker would fail the same way.
        (grpc.StatusCode.INTERNAL, "synthesis failed: espeak error", False),
        (grpc.StatusCode.INVALID_ARGUMENT, "sample_rate", False),
        (grpc.StatusCode.NOT_FOUND, "voice 'nobody'", False),
    ],
)
def test_retry_policy(code: grpc.StatusCode, details: str, expected: bool) -> None:
    assert retryable(code, details) is expected
