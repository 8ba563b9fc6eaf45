"""Container health probe: `python -m tts_worker.healthcheck [host:port]`.

Asks the worker's standard gRPC health service (`grpc.health.v1.Health/Check`, the whole
server) and exits 0 only when it answers SERVING; 1 when it answers anything else, does not
answer within the timeout, or cannot be reached. Exec-form HEALTHCHECKs and Kubernetes exec
probes run it, so it imports only the standard library and grpcio (no settings stack, no
generated stubs) and encodes the two tiny protobuf messages by hand. With TLS on
(`TTS_WORKER_TLS_CERT_FILE`), it trusts the worker's own certificate file and expects the
name `localhost` in it; with client certificates required, it presents that certificate.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import grpc

from fleet.process import run_probe

_CHECK = "/grpc.health.v1.Health/Check"
_SERVING = 1  # grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING
_TIMEOUT_SECONDS = 2.0


def default_address() -> str:
    """This container's own worker: loopback, on the port the worker itself is told to use."""
    # The probe runs beside the worker with the same environment; reading the one variable
    # here keeps the probe free of the worker's settings stack (pydantic), so it stays fast.
    return f"127.0.0.1:{os.environ.get('TTS_WORKER_PORT', '7001')}"


def probe_credentials() -> grpc.ChannelCredentials | None:
    """TLS the way the worker beside the probe speaks it, from the same environment; None
    when the worker is plaintext."""
    cert = os.environ.get("TTS_WORKER_TLS_CERT_FILE")
    if not cert:
        return None
    chain = Path(cert).read_bytes()
    if not os.environ.get("TTS_WORKER_TLS_CLIENT_CA_FILE"):
        return grpc.ssl_channel_credentials(root_certificates=chain)
    key = Path(os.environ.get("TTS_WORKER_TLS_KEY_FILE", "")).read_bytes()
    return grpc.ssl_channel_credentials(chain, private_key=key, certificate_chain=chain)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def serving_status(response: bytes) -> int:
    """The `status` field (1, varint) of a HealthCheckResponse; 0 (UNKNOWN) when absent."""
    status = 0
    pos = 0
    while pos < len(response):
        key, pos = _varint(response, pos)
        field, wire_type = key >> 3, key & 0x7
        if wire_type == 0:
            value, pos = _varint(response, pos)
            if field == 1:
                status = value
        elif wire_type == 2:
            length, pos = _varint(response, pos)
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected wire type {wire_type}")
    return status


def _channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(address)
    # The probe dials an address, not a name: check the certificate for `localhost`.
    options = [("grpc.ssl_target_name_override", "localhost")]
    return grpc.secure_channel(address, credentials, options=options)


def check(
    address: str,
    timeout: float = _TIMEOUT_SECONDS,
    credentials: grpc.ChannelCredentials | None = None,
) -> tuple[bool, str]:
    """(healthy, what was seen) for the worker at address; over TLS with credentials."""
    with _channel(address, credentials) as channel:
        # An empty HealthCheckRequest (service "") asks about the whole server.
        call = channel.unary_unary(_CHECK, request_serializer=None, response_deserializer=None)
        try:
            response = call(b"", timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            return False, f"{address}: health check failed: {code}"
    status = serving_status(response)
    return status == _SERVING, f"{address}: status {status} (1 is SERVING)"


def main(argv: list[str] | None = None) -> int:
    try:
        credentials = probe_credentials()
    except OSError as exc:
        print(f"cannot read the worker's TLS files: {exc}", file=sys.stderr)
        return 1
    return run_probe(
        argv,
        "python -m tts_worker.healthcheck [host:port]",
        functools.partial(check, credentials=credentials),
        default_address(),
    )


if __name__ == "__main__":
    sys.exit(main())
