"""Container health probe: `python -m orchestrator.http.healthcheck [url]`.

GETs the orchestrator's own `/readyz` (http://127.0.0.1:<ORCH_OPS_PORT>/readyz by default)
and exits 0 only on HTTP 200; 1 on 503 (printing the reason the orchestrator gives), any other
status, a timeout or a refused connection. Exec-form HEALTHCHECKs run it: standard library
only, so it starts fast and needs no shell in the image.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

from fleet.process import run_probe

_TIMEOUT_SECONDS = 2.0


def default_url() -> str:
    """This container's own ops port on loopback."""
    # Read directly (not through OrchestratorSettings) so the probe stays stdlib-only and fast;
    # it runs with the orchestrator's environment, so it follows the same ops port.
    return f"http://127.0.0.1:{os.environ.get('ORCH_OPS_PORT', '8081')}/readyz"


def _reason(body: bytes) -> str:
    try:
        reason = json.loads(body).get("reason")
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")
    return str(reason)


def check(url: str, timeout: float = _TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(ready, what was seen) for the readiness endpoint at url."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
            body = response.read()
    except urllib.error.HTTPError as error:
        return False, f"{url}: {error.code}: {_reason(error.read())}"
    except (OSError, ValueError) as error:
        return False, f"{url}: {error}"
    if status != 200:
        return False, f"{url}: {status}: {_reason(body)}"
    return True, f"{url}: 200"


def main(argv: list[str] | None = None) -> int:
    return run_probe(argv, "python -m orchestrator.http.healthcheck [url]", check, default_url())


if __name__ == "__main__":
    sys.exit(main())
