"""The CUDA images install what their upstreams require, read statically (no image is built
here: the bases and torch are gigabytes from registries these machines cannot reach).

CosyVoice: docker/Dockerfile.tts-cosyvoice against FunAudioLLM/CosyVoice's requirements.txt at
the commit the engine is written against, as read at that commit (UPSTREAM_REQUIREMENTS). A
change of commit fails here until the requirements are read again at the new one.
Piper on CUDA: docker/Dockerfile.tts with PIPER_EXTRA=piper-gpu gets onnxruntime's GPU build.
"""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.deploy.conftest import ROOT
from tests.deploy.test_static import parse_dockerfile
from tts_worker.engines.cosyvoice import UPSTREAM_COMMIT, ZH_NORMALIZER_CACHE

COSYVOICE_DOCKERFILE = ROOT / "docker" / "Dockerfile.tts-cosyvoice"
PIPER_DOCKERFILE = ROOT / "docker" / "Dockerfile.tts"

# FunAudioLLM/CosyVoice requirements.txt at this commit (Linux lines), as read there.
REQUIREMENTS_READ_AT = "37e48dd3184d19707372e8a8775e0f8a3a3ef0ac"
UPSTREAM_REQUIREMENTS = {
    "conformer": "0.3.2",
    "deepspeed": "0.14.2",
    "diffusers": "0.29.0",
    "gdown": "5.1.0",
    "gradio": "5.4.0",
    "grpcio": "1.57.0",
    "grpcio-tools": "1.57.0",
    "hydra-core": "1.3.2",
    "hyperpyyaml": "1.2.2",
    "inflect": "7.3.1",
    "librosa": "0.10.2",
    "lightning": "2.2.4",
    "matplotlib": "3.7.5",
    "modelscope": "1.20.0",
    "networkx": "3.1",
    "omegaconf": "2.3.0",
    "onnx": "1.16.0",
    "onnxruntime-gpu": "1.18.0",
    "openai-whisper": "20231117",
    "protobuf": "4.25",
    "pyarrow": "18.1.0",
    "pydantic": "2.7.0",
    "pyworld": "0.3.4",
    "rich": "13.7.1",
    "soundfile": "0.12.1",
    "tensorboard": "2.14.0",
    "tensorrt-cu12": "10.0.1",
    "tensorrt-cu12-bindings": "10.0.1",
    "tensorrt-cu12-libs": "10.0.1",
    "torch": "2.3.1",
    "torchaudio": "2.3.1",
    "transformers": "4.40.1",
    "uvicorn": "0.30.0",
    "wget": "3.2",
    "fastapi": "0.115.6",
    "fastapi-cli": "0.0.4",
    "wetextprocessing": "1.0.3",
}
# Not on the path the worker runs (CosyVoice2() and its streaming inference), with where
# upstream uses each; the worker's own grpcio, protobuf and pydantic come from uv.lock.
NOT_ON_THE_INFERENCE_PATH = {
    "deepspeed": "training (cosyvoice/bin/train.py)",
    "gradio": "the demo page (webui.py)",
    "grpcio": "upstream's own gRPC server (runtime/python/grpc)",
    "grpcio-tools": "upstream's own gRPC server (runtime/python/grpc)",
    "fastapi": "upstream's own HTTP server (runtime/python/fastapi)",
    "fastapi-cli": "upstream's own HTTP server (runtime/python/fastapi)",
    "uvicorn": "upstream's own HTTP server (runtime/python/fastapi)",
    "pydantic": "upstream's own HTTP server (runtime/python/fastapi)",
    "protobuf": "upstream's servers and onnx export",
    "onnx": "model export (cosyvoice/bin/export_onnx.py)",
    "tensorboard": "training (cosyvoice/utils/train_utils.py)",
    "tensorrt-cu12": "load_trt=True only (the engine passes False)",
    "tensorrt-cu12-bindings": "load_trt=True only (the engine passes False)",
    "tensorrt-cu12-libs": "load_trt=True only (the engine passes False)",
}
# Installed otherwise than pinned, as the Dockerfile explains: the index's onnxruntime-gpu
# 1.18.0 is a CUDA 11.8 build; upstream's comes from onnxruntime's CUDA 12 feed.
REPLACED = {"onnxruntime-gpu": ("onnxruntime", "1.18.0")}
# Not pinned by the commit, needed to run it: torch 2.3.1 needs NumPy 1 (upstream pinned
# 1.26.4 later).
ADDED = {"numpy": "1.26.4"}
# The modules cosyvoice2.yaml names at the commit (examples/libritts/cosyvoice2/conf, its
# `!new:` and `!name:` tags), which HyperPyYAML imports when CosyVoice2() loads the yaml;
# and those frontend.py imports for text normalization when ttsfrd is absent.
YAML_MODULES = (
    "cosyvoice.dataset.processor",
    "cosyvoice.flow.decoder",
    "cosyvoice.flow.flow",
    "cosyvoice.flow.flow_matching",
    "cosyvoice.hifigan.discriminator",
    "cosyvoice.hifigan.f0_predictor",
    "cosyvoice.hifigan.generator",
    "cosyvoice.hifigan.hifigan",
    "cosyvoice.llm.llm",
    "cosyvoice.tokenizer.tokenizer",
    "cosyvoice.transformer.upsample_encoder",
    "cosyvoice.utils.common",
    "matcha.hifigan.models",
    "matcha.utils.audio",
)
FRONTEND_NORMALIZERS = ("tn.chinese.normalizer", "tn.english.normalizer")
# third_party/Matcha-TTS at the pinned commit (a git submodule of the upstream repository).
MATCHA_SUBMODULE = "dd9105b34bf2be2230f4aa1e4769fb586a3c824e"
# CPython of each base release; pynini 2.1.5 (for WeTextProcessing 1.0.3) has wheels for
# CPython 3.6 to 3.11, and the project needs 3.11 or later.
BASE_PYTHON = {"bookworm": "3.11", "ubuntu24.04": "3.12", "ubuntu22.04": "3.10"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def builder_runs(dockerfile: str = "cosyvoice") -> list[str]:
    path = COSYVOICE_DOCKERFILE if dockerfile == "cosyvoice" else PIPER_DOCKERFILE
    _, stages = parse_dockerfile(path)
    return [run for stage in stages for run in stage.all("RUN")]


def installed_pins() -> dict[str, str]:
    """name -> version of the pip install that brings CosyVoice's requirements."""
    [run] = [r for r in builder_runs() if "torch==" in r]
    pins = re.findall(r"\s([A-Za-z0-9_.-]+)==([\w.]+)", run.split("pip install", 1)[1])
    return {normalized(name): version for name, version in pins}


def build_arg(name: str) -> str:
    text = COSYVOICE_DOCKERFILE.read_text(encoding="utf-8")
    [value] = re.findall(rf"^ARG {name}=(\S+)$", text, flags=re.MULTILINE)
    return value


def test_the_image_pins_the_commit_the_engine_is_written_against() -> None:
    """One commit: the engine's, the image's, and the one these requirements were read at."""
    assert build_arg("COSYVOICE_COMMIT") == UPSTREAM_COMMIT == REQUIREMENTS_READ_AT


@pytest.mark.parametrize("requirement", sorted(UPSTREAM_REQUIREMENTS))
def test_each_upstream_requirement_is_installed_at_its_pin_or_left_out_for_a_reason(
    requirement: str,
) -> None:
    pins = installed_pins()
    if requirement in NOT_ON_THE_INFERENCE_PATH:
        assert requirement not in pins, f"{requirement} is installed though left out"
    elif requirement in REPLACED:
        name, version = REPLACED[requirement]
        assert pins.get(name) == version and requirement not in pins
    else:
        assert pins.get(requirement) == UPSTREAM_REQUIREMENTS[requirement]


def test_nothing_is_installed_that_the_commit_does_not_pin() -> None:
    expected = {
        name: version
        for name, version in UPSTREAM_REQUIREMENTS.items()
        if name not in NOT_ON_THE_INFERENCE_PATH and name not in REPLACED
    }
    expected |= dict(REPLACED.values()) | ADDED
    assert installed_pins() == expected


def test_text_normalization_is_wetextprocessing_as_the_commit_imports_it() -> None:
    """frontend.py at the commit imports `tn` (WeTextProcessing) without ttsfrd; `wetext`
    came later. Neither the image nor the lock's extra brings wetext."""
    assert installed_pins()["wetextprocessing"] == "1.0.3"
    dockerfile = COSYVOICE_DOCKERFILE.read_text(encoding="utf-8").lower()
    assert "wetext=" not in dockerfile and "wetext " not in dockerfile
    assert not any(normalized(p).startswith("wetext") for p in extra_packages("cosyvoice"))


def test_the_base_has_the_python_the_pins_need() -> None:
    base = build_arg("BASE_IMAGE")
    [python] = [v for release, v in BASE_PYTHON.items() if release in base]
    assert python == "3.11", f"{base}: CPython {python}, pynini 2.1.5 needs 3.11 at most"


def test_matcha_comes_from_the_submodules_commit() -> None:
    assert build_arg("MATCHA_COMMIT") == MATCHA_SUBMODULE
    [run] = [r for r in builder_runs() if "MATCHA_COMMIT" in r]
    assert "Matcha-TTS/archive/${MATCHA_COMMIT}" in run and "/tmp/matcha/matcha" in run


def test_the_build_imports_what_cosyvoice2_loads() -> None:
    """A missing requirement fails the build, not the first start on a GPU machine: the
    build imports CosyVoice2's module, every module its yaml names and the normalizers."""
    [run] = [r for r in builder_runs() if "import cosyvoice.cli.cosyvoice" in r]
    imported = set(re.findall(r"[a-z_]+(?:\.[a-z_0-9]+)+", run.split("import", 1)[1]))
    assert imported >= {"cosyvoice.cli.cosyvoice", *YAML_MODULES, *FRONTEND_NORMALIZERS}


def test_the_chinese_grammar_is_prebuilt_where_the_engine_reads_it() -> None:
    """Upstream would build it at every start into the read-only tn package."""
    [run] = [r for r in builder_runs() if "prebuild_text_normalizer" in r]
    assert ZH_NORMALIZER_CACHE.name in run
    assert "/opt/venv/share/cosyvoice-tn" in run  # sys.prefix/share/cosyvoice-tn of the venv


def test_caches_written_at_run_time_are_on_writable_paths() -> None:
    """Read-only root: numba (librosa's cached JIT) and matplotlib (Matcha) write to /tmp."""
    _, stages = parse_dockerfile(COSYVOICE_DOCKERFILE)
    env = " ".join(stages[-1].all("ENV"))
    assert "NUMBA_CACHE_DIR=/tmp/" in env and "MPLCONFIGDIR=/tmp/" in env


def extra_packages(extra: str) -> list[str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    [project] = [p for p in lock["package"] if p["name"] == "voice-orchestrator"]
    return [dep["name"] for dep in project.get("optional-dependencies", {}).get(extra, [])]


def test_the_lock_leaves_cosyvoices_stack_to_the_image() -> None:
    """The `cosyvoice` extra holds only what the worker needs beside CosyVoice: no second
    onnxruntime, no torch, no text normalizer to clash with the commit's pins."""
    packages = {normalized(p) for p in extra_packages("cosyvoice")}
    assert packages and not packages & {"onnxruntime", "onnxruntime-gpu", "torch", "numpy"}
    assert not packages & set(UPSTREAM_REQUIREMENTS)


def test_piper_cuda_build_gets_onnxruntimes_gpu_build() -> None:
    """piper-gpu swaps piper-tts's CPU onnxruntime for the GPU one, and the image checks at
    build time that the CUDA provider is there."""
    assert "onnxruntime-gpu" in extra_packages("piper-gpu")
    runs = builder_runs("piper")
    [export] = [r for r in runs if "uv export" in r]
    assert "--extra piper-gpu --no-emit-package onnxruntime" in export
    [check] = [r for r in runs if "CUDAExecutionProvider" in r]
    assert '"$PIPER_EXTRA" = piper-gpu' in check
