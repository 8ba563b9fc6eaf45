"""A livekit-agents TTS plugin over voice-orchestrator's gRPC workers, for LiveKit users who
run their own AgentSession: `AgentSession(tts=WorkerTTS(workers=["tts-worker:7001"]), ...)`.

It reaches the fleet through the orchestrator's worker client (`orchestrator.workers`), its
service errors (`orchestrator.errors`) and the store (`fleet`) only.
"""

from livekit_plugin.options import FleetOptions, TLSOptions, TTSOptions
from livekit_plugin.settings import PluginSettings
from livekit_plugin.tts import WorkerTTS

__all__ = ["FleetOptions", "PluginSettings", "TLSOptions", "TTSOptions", "WorkerTTS"]
