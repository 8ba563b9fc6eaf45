// The page: wires the forms to the API, asks for a key when the server wants one, and says
// plainly what is wrong when something is (LiveKit, a worker, the microphone, the key).

import { ApiError, apiKey, type SessionEvent } from "./api";
import { Captions } from "./captions";
import { Conversation, MicrophoneError, RoomError } from "./conversation";
import { BargeInFigures, EventLog } from "./log";
import { synthesisChoices } from "./schema";
import { fillChoices, fillVoices, loadVoices, speak } from "./tts";

function $<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

const ui = {
  notice: $<HTMLParagraphElement>("notice"),
  keySection: $<HTMLElement>("key-section"),
  keyMessage: $<HTMLParagraphElement>("key-message"),
  keyForm: $<HTMLFormElement>("key-form"),
  keyInput: $<HTMLInputElement>("key-input"),
  keyForget: $<HTMLButtonElement>("key-forget"),
  ttsForm: $<HTMLFormElement>("tts-form"),
  ttsText: $<HTMLTextAreaElement>("tts-text"),
  voice: $<HTMLSelectElement>("voice"),
  format: $<HTMLSelectElement>("format"),
  speed: $<HTMLInputElement>("speed"),
  ttsSubmit: $<HTMLButtonElement>("tts-submit"),
  ttsStatus: $<HTMLParagraphElement>("tts-status"),
  ttsAudio: $<HTMLAudioElement>("tts-audio"),
  start: $<HTMLButtonElement>("start"),
  stop: $<HTMLButtonElement>("stop"),
  mic: $<HTMLButtonElement>("mic"),
  talkStatus: $<HTMLParagraphElement>("talk-status"),
  sayForm: $<HTMLFormElement>("say-form"),
  sayText: $<HTMLTextAreaElement>("say-text"),
  streamToggle: $<HTMLInputElement>("stream-toggle"),
  interruptible: $<HTMLInputElement>("interruptible"),
  saySubmit: $<HTMLButtonElement>("say-submit"),
  agentMeter: $<HTMLMeterElement>("agent-meter"),
  micMeter: $<HTMLMeterElement>("mic-meter"),
  log: $<HTMLOListElement>("log"),
  figures: $<HTMLTableSectionElement>("figures"),
};

const log = new EventLog(ui.log);
const figures = new BargeInFigures(ui.figures);
const captions = new Captions($("agent-caption"), $("user-caption"));
let conversation: Conversation | null = null;

function notice(message: string | null): void {
  ui.notice.textContent = message ?? "";
  ui.notice.hidden = !message;
}

/** Puts an API failure into words; 401 opens the key form. */
function explain(err: unknown): string {
  if (!(err instanceof ApiError)) return (err as Error).message;
  switch (err.status === 401 ? "unauthorized" : err.code) {
    case "unauthorized":
      askForKey(apiKey.get() ? `The server refused this API key: ${err.message}.` : "This server requires an API key.");
      return `API key needed: ${err.message}`;
    case "forbidden":
      return `This API key may not do that: ${err.message}`;
    case "rate_limited":
      return `Too many requests: ${err.message}`;
    case "livekit_unreachable":
      return `LiveKit is unavailable, so conversations cannot start (${err.message}). Text to speech still works.`;
    case "no_worker":
    case "worker_unavailable":
    case "draining":
      return `No TTS worker is available: ${err.message}`;
    default:
      return `${err.message} (HTTP ${err.status})`;
  }
}

function askForKey(message: string): void {
  ui.keySection.hidden = false;
  ui.keyMessage.textContent = message;
  ui.keyInput.focus();
}

// -- the API key --------------------------------------------------------------------------

ui.keyForm.addEventListener("submit", (e) => {
  e.preventDefault();
  apiKey.set(ui.keyInput.value.trim());
  ui.keyInput.value = "";
  ui.keyMessage.textContent = "Checking the key…";
  void init();
});

ui.keyForget.addEventListener("click", () => {
  apiKey.clear();
  askForKey("Key forgotten. This tab holds no API key now.");
});

// -- text to speech -------------------------------------------------------------------------

ui.ttsForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  ui.ttsSubmit.disabled = true;
  ui.ttsStatus.textContent = "Synthesizing…";
  try {
    const speed = ui.speed.disabled ? undefined : Number(ui.speed.value);
    const spoken = await speak(ui.ttsAudio, {
      text: ui.ttsText.value,
      voice: ui.voice.value || undefined,
      format: ui.format.value || "wav",
      ...(speed !== undefined && speed !== 1 ? { speed } : {}),
    });
    ui.ttsStatus.textContent = `Playing ${(spoken.bytes / 1024).toFixed(0)} KiB of ${spoken.format} (first bytes after ${Math.round(spoken.firstByteMs)} ms).`;
  } catch (err) {
    ui.ttsStatus.textContent = `Could not speak: ${explain(err)}`;
  } finally {
    ui.ttsSubmit.disabled = false;
  }
});

ui.ttsAudio.addEventListener("ended", () => {
  ui.ttsStatus.textContent = "Finished playing.";
});

// -- the conversation -----------------------------------------------------------------------

function connected(on: boolean): void {
  ui.start.disabled = on;
  ui.stop.disabled = !on;
  ui.mic.disabled = !on;
  if (!on) ui.mic.setAttribute("aria-pressed", "false");
  ui.sayText.disabled = !on;
  ui.saySubmit.disabled = !on;
}

function onEvent(event: SessionEvent): void {
  log.event(event);
  figures.event(event);
}

async function startConversation(): Promise<void> {
  ui.start.disabled = true;
  ui.talkStatus.textContent = "Connecting…";
  log.clear();
  figures.reset();
  captions.clear();
  try {
    conversation = await Conversation.start(ui.voice.value || undefined, {
      agentMeter: ui.agentMeter,
      micMeter: ui.micMeter,
      audioHolder: $("remote-audio"),
      captions,
      onEvent,
      onPage: (what, detail) => log.add(what, detail),
      onEnded: (reason) => {
        conversation = null;
        connected(false);
        ui.talkStatus.textContent = `Conversation over: ${reason}.`;
      },
    });
  } catch (err) {
    ui.start.disabled = false;
    const message = err instanceof RoomError ? `LiveKit is unavailable: ${err.message}.` : explain(err);
    ui.talkStatus.textContent = `Could not start: ${message}`;
    log.add("page: error", message);
    return;
  }
  connected(true);
  ui.talkStatus.textContent = `Connected to room ${conversation.session.room}. Type below to make the agent speak; talk over it to interrupt.`;
  await setMicrophone(true);
  ui.sayText.focus();
}

async function setMicrophone(on: boolean): Promise<void> {
  if (!conversation) return;
  try {
    await conversation.enableMicrophone(on);
    ui.mic.setAttribute("aria-pressed", String(on));
    log.add(on ? "page: microphone published" : "page: microphone muted");
  } catch (err) {
    const message = err instanceof MicrophoneError ? err.message : (err as Error).message;
    ui.mic.setAttribute("aria-pressed", "false");
    notice(`Microphone: ${message}. The agent can still speak, but it cannot hear you.`);
    log.add("page: error", message);
  }
}

ui.start.addEventListener("click", () => void startConversation());

ui.stop.addEventListener("click", async () => {
  const ending = conversation;
  conversation = null;
  connected(false);
  ui.talkStatus.textContent = "Conversation ended.";
  await ending?.end();
  ui.start.focus();
});

ui.mic.addEventListener("click", () => void setMicrophone(ui.mic.getAttribute("aria-pressed") !== "true"));

ui.sayForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!conversation) return;
  const text = ui.sayText.value;
  ui.saySubmit.disabled = true;
  try {
    await conversation.say(text, { stream: ui.streamToggle.checked, interruptible: ui.interruptible.checked });
    ui.sayText.value = "";
  } catch (err) {
    log.add("page: error", `could not say it: ${explain(err)}`);
  } finally {
    ui.saySubmit.disabled = !conversation;
    ui.sayText.focus();
  }
});

// Enter sends, Shift+Enter adds a line (as chat boxes do).
for (const [box, form] of [
  [ui.sayText, ui.sayForm],
  [ui.ttsText, ui.ttsForm],
] as const) {
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
}

// -- start-up -------------------------------------------------------------------------------

async function init(): Promise<void> {
  try {
    const [voices, choices] = await Promise.all([loadVoices(), synthesisChoices()]);
    fillVoices(ui.voice, voices);
    fillChoices(ui.format, ui.speed, choices);
    if (apiKey.get()) {
      ui.keySection.hidden = false;
      ui.keyMessage.textContent = "The API key works.";
    }
    notice(voices.voices.length ? null : "No TTS worker is registered yet: speech will fail until one is.");
  } catch (err) {
    notice(explain(err));
  }
}

void init();
