// The text-to-speech form: POST /synthesize with the chosen voice, format and speed, then
// play the answer in an <audio> element.

import { call, callJson } from "./api";
import type { SynthesisChoices } from "./schema";

export interface Voices {
  default_voice: string | null;
  voices: { name: string; language: string; native_sample_rate: number }[];
}

const MIME: Record<string, string> = {
  wav: "audio/wav",
  pcm: "audio/wav", // wrapped in a WAV header below: browsers cannot play raw PCM
  mp3: "audio/mpeg",
  opus: "audio/ogg",
  aac: "audio/aac",
  flac: "audio/flac",
};

/** A 44-byte WAV header for s16le mono PCM of `bytes` bytes at `rate` Hz. */
function wavHeader(bytes: number, rate: number): ArrayBuffer {
  const h = new DataView(new ArrayBuffer(44));
  const ascii = (at: number, s: string) => [...s].forEach((c, i) => h.setUint8(at + i, c.charCodeAt(0)));
  ascii(0, "RIFF");
  h.setUint32(4, 36 + bytes, true);
  ascii(8, "WAVEfmt ");
  h.setUint32(16, 16, true);
  h.setUint16(20, 1, true); // PCM
  h.setUint16(22, 1, true); // mono
  h.setUint32(24, rate, true);
  h.setUint32(28, rate * 2, true);
  h.setUint16(32, 2, true);
  h.setUint16(34, 16, true);
  ascii(36, "data");
  h.setUint32(40, bytes, true);
  return h.buffer;
}

/** Our WAV streams start with a header whose sizes are unknown (0xFFFFFFFF); once the whole
 * file is here, write the real sizes so the player knows the duration. */
function fixWavSizes(audio: Uint8Array): void {
  const view = new DataView(audio.buffer, audio.byteOffset, audio.byteLength);
  if (audio.byteLength < 44 || view.getUint32(0, false) !== 0x52494646) return; // "RIFF"
  view.setUint32(4, audio.byteLength - 8, true);
  for (let at = 12; at + 8 <= audio.byteLength; ) {
    const id = view.getUint32(at, false);
    if (id === 0x64617461) {
      // "data"
      view.setUint32(at + 4, audio.byteLength - at - 8, true);
      return;
    }
    at += 8 + view.getUint32(at + 4, true);
  }
}

export function fillVoices(select: HTMLSelectElement, voices: Voices): void {
  select.replaceChildren(
    ...voices.voices.map((v) => new Option(`${v.name} (${v.language})`, v.name, false, v.name === voices.default_voice)),
  );
}

export function fillChoices(format: HTMLSelectElement, speed: HTMLInputElement, choices: SynthesisChoices): void {
  format.replaceChildren(...choices.formats.map((f) => new Option(f, f, f === choices.defaultFormat, f === choices.defaultFormat)));
  if (choices.speed) {
    speed.min = String(choices.speed.min);
    speed.max = String(choices.speed.max);
    speed.value = String(choices.speed.default);
    speed.disabled = false;
    speed.title = `${choices.speed.min} to ${choices.speed.max}`;
  } else {
    speed.value = "1";
    speed.disabled = true;
    speed.title = "This server speaks at one speed only";
  }
}

export async function loadVoices(): Promise<Voices> {
  return callJson<Voices>("GET", "/v1/voices");
}

export interface Spoken {
  firstByteMs: number;
  bytes: number;
  format: string;
}

/** Synthesizes `text` and starts playing it in `audio`. */
export async function speak(
  audio: HTMLAudioElement,
  request: { text: string; voice?: string; format: string; speed?: number },
): Promise<Spoken> {
  const started = performance.now();
  const response = await call("POST", "/synthesize", request);
  const reader = response.body!.getReader();
  const chunks: Uint8Array[] = [];
  let firstByteMs = 0;
  let bytes = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (!bytes) firstByteMs = performance.now() - started;
    chunks.push(value);
    bytes += value.byteLength;
  }
  const format = response.headers.get("X-Audio-Format") ?? request.format;
  const parts: BlobPart[] = [];
  if (format === "pcm") {
    const rate = Number(response.headers.get("X-Sample-Rate") ?? "22050");
    parts.push(wavHeader(bytes, rate));
  }
  const whole = new Uint8Array(bytes);
  chunks.reduce((at, c) => (whole.set(c, at), at + c.byteLength), 0);
  if (format === "wav") fixWavSizes(whole);
  parts.push(whole);
  if (audio.src) URL.revokeObjectURL(audio.src);
  audio.src = URL.createObjectURL(new Blob(parts, { type: MIME[format] ?? "application/octet-stream" }));
  await audio.play();
  return { firstByteMs, bytes, format };
}
