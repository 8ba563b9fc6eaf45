"""Debian's Chromium driven by Playwright (no browser download), and what the page tests
read off the page: log entries, meters, console errors."""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Locator, Page, Playwright, expect

KEYBOARD_STEPS = 40  # Tab presses allowed to reach a control: more than the page has
CONTROL_ROLES = ("button", "textbox", "combobox", "checkbox", "spinbutton", "meter", "link")


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError(
            "Debian's chromium is not installed (scripts/system_deps.sh installs it)"
        )
    return path


async def launch(
    playwright: Playwright, mic_wav: Path | None = None, *, mic_allowed: bool = True
) -> Browser:
    """Headless Chromium whose microphone is fake: the WAV file (looped), else Chromium's own
    beep. Audio may play without a click; the microphone permission is granted unless
    `mic_allowed` is false (then the page's request is refused, as when a person says no)."""
    args = ["--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required"]
    if mic_allowed:
        args.append("--use-fake-ui-for-media-stream")
    if mic_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={mic_wav}")
    return await playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=args
    )


@dataclass
class Console:
    """Every console error and uncaught exception of a page."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        return page

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")

    def besides(self, *statuses: int) -> list[str]:
        """Errors other than the browser's own report of an answer with one of `statuses`
        (Chromium logs every 4xx/5xx fetch as a console error)."""
        codes = "|".join(map(str, statuses))
        expected = re.compile(
            rf"Failed to load resource: the server responded with a status of ({codes})\b"
        )
        return [e for e in self.errors if not (statuses and expected.search(e))]


async def new_page(
    browser: Browser, base_url: str, console: Console, *, mic_allowed: bool = True
) -> Page:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 1400})
    if mic_allowed:
        await context.grant_permissions(["microphone"])
    page = console.watch(await context.new_page())
    await page.goto("/")
    return page


def log_entries(page: Page) -> Locator:
    return page.get_by_role("log", name="Event log").get_by_role("listitem")


def kind_of(entry: str) -> str:
    """An entry reads `HH:MM:SS <kind> — detail`."""
    return entry.split(" — ")[0].split(" ", 1)[1]


async def wait_for_entry(page: Page, kind: str, *, after: int = 0, within: float = 60.0) -> int:
    """Index of the first log entry of `kind` at or after index `after`, waiting (bounded)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        entries = await log_entries(page).all_inner_texts()
        for i, entry in enumerate(entries[after:], after):
            if kind_of(entry) == kind:
                return i
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {kind!r} entry after #{after} within {within}s: {entries}")
        await asyncio.sleep(0.1)


async def wait_for_level(meter: Locator, above: float, within: float = 60.0) -> float:
    """Waits (bounded) until the meter reads above `above`; returns the reading."""
    handle = await meter.element_handle()
    result = await meter.page.wait_for_function(
        "([m, above]) => m.value > above ? m.value : false",
        arg=[handle, above],
        polling=20,
        timeout=within * 1000,
    )
    return float(await result.json_value())


async def tab_to(page: Page, target: Locator) -> None:
    """Moves the focus to `target` with the Tab key alone, as a keyboard user would."""
    for _ in range(KEYBOARD_STEPS):
        if await target.evaluate("el => el === document.activeElement"):
            return
        await page.keyboard.press("Tab")
    await expect(target).to_be_focused(timeout=1)


async def named_controls(page: Page | Locator) -> list[Locator]:
    """Every visible control, each checked to have an accessible name (a screen reader reads
    it out); hidden ones have no name to check until they are shown."""
    controls = []
    for role in CONTROL_ROLES:
        for control in await page.get_by_role(role).all():
            await expect(control).to_have_accessible_name(re.compile(r"\w"))
            controls.append(control)
    return controls
