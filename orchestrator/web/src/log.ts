// The event log and the barge-in figures of the current session.

import type { SessionEvent } from "./api";

const MAX_ENTRIES = 500;

function seconds(value: unknown, unit = "s"): string {
  if (typeof value !== "number") return "";
  return unit === "ms" ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

/** One line of detail per event kind: what a person watching barge-in wants to read. */
function describe(event: SessionEvent): string {
  const heard = () => {
    const text = typeof event.text_heard === "string" && event.text_heard ? ` "${event.text_heard}"` : "";
    return `heard ${seconds(event.position_seconds)}${text}`;
  };
  switch (event.type) {
    case "interrupted":
      return `${heard()}; onset to stop ${seconds(event.onset_to_stop_seconds, "ms") || "n/a"}`;
    case "cancelled":
      return `${heard()}; paused ${seconds(event.pause_seconds) || "n/a"}`;
    case "resumed":
      return `after a pause of ${seconds(event.pause_seconds) || "n/a"}`;
    case "finished":
      return `${seconds(event.position_seconds)} played`;
    case "user_speech_stopped":
      return `${seconds(event.speech_seconds)} of speech`;
    case "error":
    case "session_ended":
      return String(event.reason ?? "");
    default:
      return typeof event.utterance_id === "string" ? `utterance ${event.utterance_id.slice(0, 8)}` : "";
  }
}

export class EventLog {
  constructor(private readonly list: HTMLOListElement) {}

  /** A server event, or one of the page's own (`page: ...`). */
  add(kind: string, detail = ""): void {
    const item = document.createElement("li");
    const time = new Date().toLocaleTimeString(undefined, { hour12: false });
    item.dataset.kind = kind;
    item.textContent = `${time} ${kind}${detail ? ` — ${detail}` : ""}`;
    if (kind === "error" || kind.endsWith("error")) item.classList.add("bad");
    this.list.append(item);
    while (this.list.children.length > MAX_ENTRIES) this.list.firstElementChild?.remove();
    item.scrollIntoView({ block: "nearest" });
  }

  event(event: SessionEvent): void {
    this.add(event.type, describe(event));
  }

  clear(): void {
    this.list.replaceChildren();
  }
}

function median(values: number[]): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Barge-in as the server measured it in this session: counts, and onset-to-stop and
 * pause figures (last and median). */
export class BargeInFigures {
  private onsetToStop: number[] = [];
  private pauses: number[] = [];
  private counts = { interrupted: 0, resumed: 0, cancelled: 0 };
  private lastHeard: number | undefined;

  constructor(private readonly body: HTMLTableSectionElement) {
    this.render();
  }

  event(event: SessionEvent): void {
    if (event.type !== "interrupted" && event.type !== "resumed" && event.type !== "cancelled") return;
    this.counts[event.type] += 1;
    if (typeof event.onset_to_stop_seconds === "number") this.onsetToStop.push(event.onset_to_stop_seconds);
    if (typeof event.pause_seconds === "number") this.pauses.push(event.pause_seconds);
    if (typeof event.position_seconds === "number") this.lastHeard = event.position_seconds;
    this.render();
  }

  reset(): void {
    this.onsetToStop = [];
    this.pauses = [];
    this.counts = { interrupted: 0, resumed: 0, cancelled: 0 };
    this.lastHeard = undefined;
    this.render();
  }

  private render(): void {
    const ms = (v: number | undefined) => (v === undefined ? "–" : `${Math.round(v * 1000)} ms`);
    const rows: [string, string][] = [
      ["Interruptions", String(this.counts.interrupted)],
      ["Resumed (false interruptions)", String(this.counts.resumed)],
      ["Cancelled", String(this.counts.cancelled)],
      ["Onset to stop, last", ms(this.onsetToStop.at(-1))],
      ["Onset to stop, median", ms(median(this.onsetToStop))],
      ["Pause before decision, median", ms(median(this.pauses))],
      ["Heard position, last", this.lastHeard === undefined ? "–" : `${this.lastHeard.toFixed(2)} s`],
    ];
    this.body.replaceChildren(
      ...rows.map(([name, value]) => {
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = name;
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(th, td);
        return tr;
      }),
    );
  }
}
