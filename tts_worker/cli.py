"""`tts-worker`: run one TTS worker with settings from the environment."""

from __future__ import annotations

import asyncio

from fleet.logs import configure_logging
from tts_worker.server import serve
from tts_worker.settings import WorkerSettings


def main() -> None:
    settings = WorkerSettings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
