"""Engine registry: name -> factory. Engines import their heavy dependencies lazily so a
worker only loads the one it runs."""

from __future__ import annotations

from collections.abc import Callable

from tts_worker.engines.base import Engine
from tts_worker.settings import WorkerSettings


def _piper(settings: WorkerSettings) -> Engine:
    from tts_worker.engines.piper import PiperEngine

    return PiperEngine.from_settings(settings)


def _cosyvoice(settings: WorkerSettings) -> Engine:
    from tts_worker.engines.cosyvoice import CosyVoiceEngine

    return CosyVoiceEngine.from_settings(settings)


ENGINES: dict[str, Callable[[WorkerSettings], Engine]] = {
    "piper": _piper,
    "cosyvoice": _cosyvoice,
}


def create_engine(settings: WorkerSettings) -> Engine:
    try:
        factory = ENGINES[settings.engine]
    except KeyError:
        raise ValueError(f"unknown engine {settings.engine!r}; known: {sorted(ENGINES)}") from None
    return factory(settings)
