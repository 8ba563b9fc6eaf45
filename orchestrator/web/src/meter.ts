// Level meters: the loudness of a live audio track, shown in a <meter> element.

const FLOOR_DB = -60; // quieter than this shows as 0
const INTERVAL_MS = 50;

let context: AudioContext | null = null;

/** One AudioContext for the page, made (or resumed) from a click so autoplay rules allow it. */
export function audioContext(): AudioContext {
  context ??= new AudioContext();
  if (context.state === "suspended") void context.resume();
  return context;
}

/** Drives `element` from the RMS level of `track` until the returned stop function runs. */
export function meterTrack(track: MediaStreamTrack, element: HTMLMeterElement): () => void {
  const ctx = audioContext();
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = window.setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : FLOOR_DB;
    const level = Math.max(0, Math.min(1, (db - FLOOR_DB) / -FLOOR_DB));
    element.value = level;
    element.setAttribute("aria-valuetext", `${Math.round(db < FLOOR_DB ? FLOOR_DB : db)} dB`);
  }, INTERVAL_MS);
  return () => {
    window.clearInterval(timer);
    source.disconnect();
    element.value = 0;
    element.removeAttribute("aria-valuetext");
  };
}
