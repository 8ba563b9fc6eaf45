"""A fake LLM for AgentSession tests: no language model can run here, so replies are
scripted. It streams each reply as small deltas with a pause between them, the way a real
LLM's tokens arrive, through livekit-agents' own LLM and LLMStream classes."""

from __future__ import annotations

import asyncio
from typing import Any

from livekit.agents import llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions


class ScriptedLLM(llm.LLM):
    """Answers every turn with the next scripted reply (a list of deltas)."""

    def __init__(self, *replies: list[str], delta_seconds: float = 0.03) -> None:
        super().__init__()
        self._replies = list(replies)
        self.delta_seconds = delta_seconds

    @property
    def model(self) -> str:
        return "scripted"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        **_: Any,
    ) -> llm.LLMStream:
        if not self._replies:
            raise AssertionError("the LLM was asked for more replies than were scripted")
        return _ScriptedStream(
            self,
            self._replies.pop(0),
            chat_ctx=chat_ctx,
            tools=tools or [],
            conn_options=conn_options,
        )


class _ScriptedStream(llm.LLMStream):
    def __init__(self, owner: ScriptedLLM, deltas: list[str], **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self._deltas = deltas
        self._pause = owner.delta_seconds

    async def _run(self) -> None:
        for delta in self._deltas:
            chunk = llm.ChatChunk(
                id="scripted", delta=llm.ChoiceDelta(role="assistant", content=delta)
            )
            self._event_ch.send_nowait(chunk)
            await asyncio.sleep(self._pause)
