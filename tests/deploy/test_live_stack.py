"""The production compose stack, built and run for real in podman.

Builds the orchestrator and Piper images from the local bases (scripts/deploy_images.sh),
starts docker-compose.prod.yml plus deploy/compose.test.yml (host network, 127.0.0.1, free
ports) through Docker Compose v2 talking to `podman system service`, waits for every
healthcheck (podman runs them here only when asked, so the test pumps `podman healthcheck
run`), then checks what an operator relies on. The tests share one stack and run in file
order: the last ones stop it piece by piece. Everything started is removed at the end, even
when a step fails.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audio_checks import parse_wav, transcribe, word_error_rate
from tests.deploy.conftest import ROOT, compose_binary, system_tool
from tests.processes import free_port

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(3600)]

CONTAINERS_CONF = ROOT / "deploy" / "podman" / "containers.conf"
BUILD_TIMEOUT_SECONDS = 2400
UP_TIMEOUT_SECONDS = 300
SENTENCE = "The containers are speaking now, one clause at a time."
API_KEY = "deploy-test-api-key-0123456789"
# Size targets (decimal megabytes, as `podman images` prints them). The orchestrator's was
# 700 MB before sessions recognized speech: Whisper's weights and CTranslate2 add 155 MB.
PIPER_IMAGE_MAX_BYTES = 450_000_000
ORCHESTRATOR_IMAGE_MAX_BYTES = 800_000_000


@dataclass
class Stack:
    """One compose project in podman, and the ways a test looks into it."""

    project: str
    workdir: Path
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def ops(self) -> str:
        return f"http://127.0.0.1:{self.ports['ops']}"

    def compose_command(self, *args: str) -> list[str]:
        """Compose v2 on the production file plus the test override, as this project."""
        return [
            str(compose_binary()),
            "--project-name", self.project,
            "--file", str(ROOT / "docker-compose.prod.yml"),
            "--file", str(ROOT / "deploy" / "compose.test.yml"),
            *args,
        ]  # fmt: skip

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.compose_command(*args),
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def podman(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def container(self, service: str) -> str:
        return f"{self.project}-{service}-1"

    def containers(self) -> list[str]:
        result = self.podman(
            "ps", "--all", "--format", "{{.Names}}",
            "--filter", f"label=com.docker.compose.project={self.project}",
        )  # fmt: skip
        return sorted(result.stdout.split())

    def inspect(self, service: str) -> dict[str, Any]:
        result = self.podman("container", "inspect", self.container(service))
        assert result.returncode == 0, result.stderr
        data: list[dict[str, Any]] = json.loads(result.stdout)
        return data[0]

    def health(self, service: str) -> str:
        state = self.inspect(service)["State"]
        health = state.get("Health") or state.get("Healthcheck") or {}
        return str(health.get("Status", ""))

    def run_healthcheck(self, name: str) -> int:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.podman("healthcheck", "run", name, timeout=20).returncode
        return -1

    def pump_healthchecks(self, names: list[str]) -> None:
        """Run each container's healthcheck once (podman has no timer for them here)."""
        for name in names:
            self.run_healthcheck(name)

    def logs(self) -> str:
        parts = []
        for name in self.containers():
            result = self.podman("logs", "--tail", "40", name)
            parts.append(f"--- {name}\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
        return "\n".join(parts)


def _wait(what: str, condition: Callable[[], bool], timeout: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{stack.logs()}")


def _podman_api_answers(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(2)
            client.connect(str(sock))
            client.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            return b"OK" in client.recv(4096)
    except OSError:
        return False


def _build_images(env: dict[str, str], log: Path) -> dict[str, str]:
    with log.open("w") as out:
        result = subprocess.run(
            [str(ROOT / "scripts" / "deploy_images.sh"), "build"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT_SECONDS,
        )
    if result.returncode != 0:
        pytest.fail(f"scripts/deploy_images.sh build failed:\n{log.read_text()[-6000:]}")
    images = subprocess.run(
        [str(ROOT / "scripts" / "deploy_images.sh"), "env"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = dict(
        part.split("=", 1) for part in images.replace("export ", "").split() if "=" in part
    )
    return {"orchestrator": found["ORCHESTRATOR_IMAGE"], "tts-piper": found["PIPER_IMAGE"]}


@dataclass
class Images:
    """The freshly built images, and the environment that reaches podman."""

    env: dict[str, str]
    names: dict[str, str]

    def podman(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="deploy-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def images(workdir: Path) -> Images:
    """Both images built from the local bases (layers cached between runs)."""
    for tool in ("podman", "debootstrap"):
        system_tool(tool)
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(CONTAINERS_CONF),
        "DOCKER_HOST": f"unix://{workdir}/podman.sock",
    }
    return Images(env, _build_images(env, workdir / "build.log"))


@pytest.fixture(scope="module")
def stack(images: Images, workdir: Path) -> Iterator[Stack]:
    """The production compose stack, healthy; removed afterwards whatever happened."""
    yield from _run_stack(workdir, dict(images.env), images.names)


def _run_stack(workdir: Path, env: dict[str, str], images: dict[str, str]) -> Iterator[Stack]:
    ports = {
        "api": free_port(),
        "ops": free_port(),
        "redis": free_port(),
        "worker": free_port(),
        "worker_metrics": free_port(),
        "livekit": free_port(),
    }
    env.update(
        {
            # An operator's .env in the checkout must not change what the test runs.
            "COMPOSE_DISABLE_ENV_FILE": "1",
            "REDIS_PASSWORD": secrets.token_hex(16),
            "ORCH_API_KEYS": json.dumps({API_KEY: ["synthesize", "sessions"]}),
            "LIVEKIT_API_KEY": "deploytest",
            "LIVEKIT_API_SECRET": secrets.token_hex(24),
            "LIVEKIT_DOMAIN": "livekit.invalid",
            "PUBLIC_DOMAIN": "api.invalid",
            "ACME_EMAIL": "ops@example.invalid",
            "IMAGE_REGISTRY": images["orchestrator"].split("/", 1)[0],
            "IMAGE_TAG": images["orchestrator"].rsplit(":", 1)[1],
            "DEPLOY_TEST_API_PORT": str(ports["api"]),
            "DEPLOY_TEST_OPS_PORT": str(ports["ops"]),
            "DEPLOY_TEST_REDIS_PORT": str(ports["redis"]),
            "DEPLOY_TEST_WORKER_PORT": str(ports["worker"]),
            "DEPLOY_TEST_WORKER_METRICS_PORT": str(ports["worker_metrics"]),
            "DEPLOY_TEST_LIVEKIT_PORT": str(ports["livekit"]),
        }
    )
    stack = Stack(f"vo-deploy-test-{os.getpid()}", workdir, ports, env, images)
    with (workdir / "podman-service.log").open("w") as service_log:
        service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", env["DOCKER_HOST"]],
            env=env,
            stdout=service_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            sock = workdir / "podman.sock"
            _wait("podman system service", lambda: _podman_api_answers(sock), 30, stack)
            _start(stack)
            yield stack
        finally:
            try:
                stack.compose(
                    "down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=180
                )
            finally:
                _remove_leftovers(stack)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.pid, signal.SIGTERM)
                try:
                    service.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(service.pid, signal.SIGKILL)
                    service.wait()


def _remove_leftovers(stack: Stack) -> None:
    """Whatever `down` left behind (a failed start, a hung container) goes too."""
    label = f"label=com.docker.compose.project={stack.project}"
    listings = {
        "container": ("ps", "--all", "--quiet", "--filter", label),
        "volume": ("volume", "ls", "--quiet", "--filter", label),
        "network": ("network", "ls", "--quiet", "--filter", label),
    }
    for kind, listing in listings.items():
        for item in stack.podman(*listing).stdout.split():
            stack.podman(kind, "rm", "--force", item, timeout=60)


def _start(stack: Stack) -> None:
    """`compose up` while pumping healthchecks, then wait until every container is healthy."""
    up = subprocess.Popen(
        stack.compose_command("up", "--detach", "--no-build", "--pull", "never"),
        env=stack.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(up.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + UP_TIMEOUT_SECONDS
    try:
        while up.poll() is None and time.monotonic() < deadline:
            stack.pump_healthchecks(stack.containers())
            time.sleep(1)
        if up.poll() is None:
            up.kill()
            up.wait()
            pytest.fail(f"compose up did not finish in {UP_TIMEOUT_SECONDS} s\n{stack.logs()}")
    finally:
        reader.join(10)
    assert up.returncode == 0, f"compose up failed:\n{''.join(output)[-4000:]}\n{stack.logs()}"

    services = ("redis", "tts-piper", "orchestrator")

    def all_healthy() -> bool:
        stack.pump_healthchecks([stack.container(s) for s in services])
        for service in services:
            state = stack.inspect(service)["State"]
            if not state["Running"]:
                raise AssertionError(
                    f"{service} exited with code {state['ExitCode']} during start-up\n"
                    f"{stack.logs()}"
                )
        return all(stack.health(s) == "healthy" for s in services)

    _wait("every healthcheck to pass", all_healthy, 120, stack)


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _stop(stack: Stack, service: str) -> tuple[float, dict[str, Any]]:
    """`podman stop` with the container's own grace period; (seconds taken, final state)."""
    started = time.monotonic()
    result = stack.podman("stop", stack.container(service), timeout=120)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    return took, stack.inspect(service)


def test_images_meet_their_size_targets(images: Images) -> None:
    """The Piper image stays under 450 MB and the orchestrator's under 800 MB."""
    sizes = {}
    for name, image in images.names.items():
        result = images.podman("image", "inspect", "--format", "{{.Size}}", image)
        assert result.returncode == 0, result.stderr
        sizes[name] = int(result.stdout.strip())
    assert sizes["tts-piper"] <= PIPER_IMAGE_MAX_BYTES, sizes
    assert sizes["orchestrator"] <= ORCHESTRATOR_IMAGE_MAX_BYTES, sizes


@pytest.mark.parametrize("image", ["orchestrator", "tts-piper"])
def test_runtime_image_has_no_compiler_and_ships_bytecode(images: Images, image: str) -> None:
    """The runtime stage carries no toolchain, and the app's bytecode is compiled in."""
    script = (
        "for tool in gcc cc c++ g++ clang make ld; do"
        '  if command -v "$tool"; then exit 1; fi; '
        "done; "
        "if ls /usr/include/python3*/Python.h 2>/dev/null; then exit 2; fi; "
        "find /opt/venv/lib/python3*/site-packages -name '*.cpython-*.pyc' "
        "-path '*/tts_rpc/*' | grep -q . || exit 3"
    )
    result = images.podman(
        "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh",
        images.names[image], "-c", script,
    )  # fmt: skip
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)


def test_synthesize_through_the_containers_returns_speech(stack: Stack) -> None:
    """POST /synthesize crosses orchestrator, Redis registry and Piper container: real words."""
    anonymous = httpx.post(f"{stack.api}/synthesize", json={"text": SENTENCE}, timeout=60)
    assert anonymous.status_code == 401  # the production file requires API keys
    response = httpx.post(
        f"{stack.api}/synthesize",
        json={"text": SENTENCE},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("audio/wav")
    audio = parse_wav(response.content)
    assert audio.seconds > 1.0
    heard = transcribe(audio)
    assert word_error_rate(SENTENCE, heard) <= 0.2, heard


def test_services_run_as_uid_1000_without_privileges(stack: Stack) -> None:
    """The app processes are UID/GID 1000, with no capabilities and no way to gain any."""
    for service in ("orchestrator", "tts-piper"):
        pid = stack.inspect(service)["State"]["Pid"]
        status = _proc_status(pid)
        assert status["Uid"].split() == ["1000"] * 4, (service, status["Uid"])
        assert status["Gid"].split() == ["1000"] * 4, (service, status["Gid"])
        assert int(status["CapEff"], 16) == 0, (service, status["CapEff"])
        assert int(status["CapBnd"], 16) == 0, (service, status["CapBnd"])
        assert status["NoNewPrivs"] == "1", service


def test_root_filesystem_is_read_only(stack: Stack) -> None:
    """Even root in the container cannot write the image; only the /tmp tmpfs is writable."""
    probe = (
        "import errno, sys\n"
        "try:\n"
        "    open('/opt/venv/probe', 'w')\n"
        "except OSError as e:\n"
        "    sys.exit(e.errno)\n"
        "sys.exit(0)\n"
    )
    for service in ("orchestrator", "tts-piper"):
        assert stack.inspect(service)["HostConfig"]["ReadonlyRootfs"] is True
        name = stack.container(service)
        result = stack.podman("exec", "--user", "0", name, "python", "-c", probe)
        assert result.returncode == errno.EROFS, (service, result.returncode, result.stderr)
        result = stack.podman("exec", name, "python", "-c", "open('/tmp/probe', 'w').write('x')")
        assert result.returncode == 0, (service, result.stderr)


def test_stopping_the_worker_drains_it_and_makes_the_orchestrator_unhealthy(
    stack: Stack,
) -> None:
    """SIGTERM drains the worker (exit 0 within its grace); the orchestrator then fails /readyz."""
    took, state = _stop(stack, "tts-piper")
    grace = state["Config"].get("StopTimeout", 10)
    assert state["State"]["ExitCode"] == 0, (state["State"], stack.logs())
    assert took < grace, (took, grace)
    logged = stack.podman("logs", stack.container("tts-piper"))
    worker_log = logged.stdout + logged.stderr
    assert "draining" in worker_log and "stopped" in worker_log

    orchestrator = stack.container("orchestrator")

    def unhealthy() -> bool:
        stack.run_healthcheck(orchestrator)
        return stack.health("orchestrator") == "unhealthy"

    _wait("the orchestrator's healthcheck to turn unhealthy", unhealthy, 90, stack)
    response = httpx.get(f"{stack.ops}/readyz", timeout=5)
    assert response.status_code == 503
    assert "worker" in response.json()["reason"]


@pytest.mark.parametrize("service", ["orchestrator", "redis"])
def test_sigterm_stops_the_container_cleanly_within_its_grace_period(
    stack: Stack, service: str
) -> None:
    """Stop sends SIGTERM; the process exits 0 by itself, before the SIGKILL deadline."""
    state = stack.inspect(service)
    assert state["Config"].get("StopSignal") in ("SIGTERM", "15", 15, None)
    took, state = _stop(stack, service)
    grace = state["Config"].get("StopTimeout", 10)
    assert state["State"]["ExitCode"] == 0, (state["State"], stack.logs())
    assert took < grace, (took, grace)
