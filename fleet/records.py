"""Records the fleet keeps in its store, serialised as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from tts_rpc.v1 import tts_pb2


@dataclass(frozen=True)
class VoiceInfo:
    """A voice a worker can speak with."""

    name: str
    native_sample_rate: int
    language: str = ""
    loaded: bool = True


@dataclass(frozen=True)
class WorkerRecord:
    """One worker's heartbeat: where it is, what it speaks and how busy it is."""

    worker_id: str
    address: str
    engine: str
    voices: tuple[VoiceInfo, ...]
    default_voice: str
    max_streams: int
    sample_rates: tuple[int, ...] = ()
    active_streams: int = 0
    queued_streams: int = 0
    draining: bool = False
    max_utterance_chars: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def voice(self, name: str) -> VoiceInfo | None:
        return next((v for v in self.voices if v.name == name), None)

    @property
    def load(self) -> float:
        """Fraction of capacity in use, counting queued streams (can exceed 1)."""
        return (self.active_streams + self.queued_streams) / max(self.max_streams, 1)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerRecord:
        data = json.loads(raw)
        data["voices"] = tuple(VoiceInfo(**v) for v in data["voices"])
        data["sample_rates"] = tuple(data.get("sample_rates", ()))
        return cls(**data)

    @classmethod
    def from_capabilities(cls, caps: tts_pb2.Capabilities, address: str) -> WorkerRecord:
        """The registry entry for a worker, built from what it reports about itself."""
        return cls(
            worker_id=caps.worker_id,
            address=address,
            engine=caps.engine,
            voices=tuple(
                VoiceInfo(v.name, v.native_sample_rate, v.language, v.loaded) for v in caps.voices
            ),
            default_voice=caps.default_voice,
            max_streams=caps.max_concurrent_streams,
            sample_rates=tuple(caps.sample_rates),
            active_streams=caps.active_streams,
            queued_streams=caps.queued_streams,
            draining=caps.draining,
            max_utterance_chars=caps.max_utterance_chars,
        )
