"""A client that hangs up mid-stream cancels the worker stream, all the way down."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.processes import WorkerProcess

LONG_TEXT = " ".join(["This sentence keeps the worker busy for a good while longer."] * 20)


async def cancelled_streams(worker: WorkerProcess) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{worker.metrics_port}/metrics")).text
    match = re.search(
        r'^voiceorch_worker_streams_total\{engine="piper",outcome="client_cancelled"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(match.group(1)) if match else 0.0


async def test_client_disconnect_cancels_the_worker_stream(
    api: httpx.AsyncClient, piper_worker: WorkerProcess
) -> None:
    before = await cancelled_streams(piper_worker)
    async with api.stream("POST", "/synthesize", json={"text": LONG_TEXT}) as response:
        assert response.status_code == 200
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > 20_000:
                break  # leaving the block closes the connection mid-utterance
    for _ in range(100):
        if await cancelled_streams(piper_worker) > before:
            break
        await asyncio.sleep(0.05)
    assert await cancelled_streams(piper_worker) == before + 1
