"""Write docs/CONFIGURATION.md from the settings classes, so the reference matches the code.

`python -m scripts.gen_config_docs` rewrites it; a test fails when it is stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from livekit_plugin.settings import PluginSettings
from orchestrator.settings import OrchestratorSettings
from tts_worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "CONFIGURATION.md"

INTRO = """# Configuration reference

Every setting is an environment variable. Each service reads only its own prefix
(`ORCH_` for the orchestrator, `TTS_WORKER_` for workers, `VOICEORCH_TTS_` for the LiveKit
plugin inside someone else's agent, where the constructor's arguments of the same names win
over them); `REDIS_URL` is also accepted by the orchestrator and the workers as a shared
fallback. Lists and maps are JSON, e.g.
`ORCH_WORKERS='["10.0.0.5:7001"]'`. Defaults suit the embedded single-node mode that
`make run` starts.

This file is generated from the settings classes by `python -m scripts.gen_config_docs`.
"""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if value == "":
        return '`""`'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def _env_names(cls: type[BaseSettings], name: str, field: FieldInfo) -> str:
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = [f"{prefix}{name}".upper()]
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        names = [str(c) for c in choices]
    return " / ".join(f"`{n}`" for n in names)


def section(title: str, cls: type[BaseSettings]) -> str:
    lines = [f"## {title}", "", "| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in cls.model_fields.items():
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        lines.append(f"| {_env_names(cls, name, field)} | {_default(field)} | {meaning} |")
    return "\n".join(lines) + "\n"


def render() -> str:
    return "\n".join(
        [
            INTRO,
            section("Orchestrator (`voice-orchestrator`)", OrchestratorSettings),
            section("TTS worker (`tts-worker`)", WorkerSettings),
            section("LiveKit plugin (`livekit_plugin.WorkerTTS`)", PluginSettings),
        ]
    )


def main() -> None:
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
