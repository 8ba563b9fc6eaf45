"""Which voice a request means: a voice of the fleet, an alias (OpenAI's voice names by
default), and OpenAI's `model` field, which may also name a voice or an engine.

- `voice` naming a voice of the fleet is that voice.
- An alias maps to a voice, or to "default": the voice a request without one gets.
- `model` is one of OpenAI's speech models (it then changes nothing), an engine of the
  fleet (the voice must be one of that engine's; an alias or no voice means the engine's
  default voice), or a voice of the fleet (spoken when `voice` is an alias or absent, so a
  client with a fixed OpenAI voice list can still pick any voice through its model box).

Anything else is 404 naming the field, never a substitute voice.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator import errors
from orchestrator.workers.registry import WorkerRegistry

OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "cedar",
    "coral",
    "echo",
    "fable",
    "marin",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
)
"""The voice names of OpenAI's speech API."""
DEFAULT_VOICE_ALIAS = "default"
"""An alias target that means the default voice."""
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
"""OpenAI's speech models (dated `gpt-4o-mini-tts-*` snapshots are accepted too)."""


def is_openai_model(model: str) -> bool:
    return model in OPENAI_MODELS or model.startswith("gpt-4o-mini-tts-")


class VoiceResolver:
    """Resolves request names against the live fleet."""

    def __init__(self, registry: WorkerRegistry, aliases: Mapping[str, str]) -> None:
        self.registry = registry
        self.aliases = dict(aliases)

    def engines(self) -> list[str]:
        return sorted({worker.engine for worker in self.registry.workers})

    def models(self) -> list[str]:
        """What `model` may name: OpenAI's models, then the fleet's engines."""
        return [*OPENAI_MODELS, *self.engines()]

    def alias_target(self, alias: str) -> str | None:
        """The voice an alias names now (None: not an alias, or no voice to name)."""
        target = self.aliases.get(alias)
        if target == DEFAULT_VOICE_ALIAS:
            return self.registry.default_voice()
        return target

    def resolve(self, voice: str | None, model: str | None = None) -> str:
        """The fleet voice a request names, or a ServiceError naming the field at fault."""
        voices = self.registry.voices()
        if not voices:
            raise errors.no_worker()
        engine = model_voice = None
        if model is not None and not is_openai_model(model):
            if model in self.engines():
                engine = model
            elif model in voices:
                model_voice = model
            else:
                raise errors.model_not_found(model, [*self.models(), *sorted(voices)])
        offered = sorted(
            name
            for name in voices
            if engine is None
            or any(w.engine == engine and w.voice(name) is not None for w in self.registry.workers)
        )
        if voice is not None and voice in voices:
            if voice not in offered:
                raise errors.voice_not_found(voice, offered)
            return voice
        if voice is not None and voice not in self.aliases:
            raise errors.voice_not_found(voice, offered)
        if model_voice is not None:
            return model_voice
        target = DEFAULT_VOICE_ALIAS if voice is None else self.aliases[voice]
        if target == DEFAULT_VOICE_ALIAS:
            default = self._default_voice(engine)
            if default is None:
                raise errors.no_worker()
            return default
        if target not in offered:
            raise errors.voice_not_found(voice or target, offered)
        return target

    def _default_voice(self, engine: str | None) -> str | None:
        if engine is None:
            return self.registry.default_voice()
        return next(w.default_voice for w in self.registry.workers if w.engine == engine)
