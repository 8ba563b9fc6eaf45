"""A livekit-agents TTS plugin over voice-orchestrator's gRPC workers, for LiveKit users who
run their own AgentSession: `AgentSession(tts=WorkerTTS("tts-worker:7001"), ...)`.

It depends on the orchestrator's worker client only (`orchestrator.workers`)."""

from livekit_plugin.tts import WorkerTTS

__all__ = ["WorkerTTS"]
