// A conversation: a session created on the orchestrator, its LiveKit room joined with the
// official client, the agent's track played and metered, the microphone published, and the
// session's events followed.

import {
  type LocalTrackPublication,
  type RemoteTrack,
  Room,
  RoomEvent,
  Track,
} from "livekit-client";

import { call, callJson, followEvents, type SessionEvent } from "./api";
import type { Captions } from "./captions";
import { audioContext, meterTrack } from "./meter";

export interface Created {
  session_id: string;
  room: string;
  url: string;
  token: string;
  identity: string;
  voice: string;
}

export interface ConversationView {
  agentMeter: HTMLMeterElement;
  micMeter: HTMLMeterElement;
  audioHolder: HTMLElement;
  captions: Captions;
  /** Every session event, and the page's own (`page: ...`) with a detail line. */
  onEvent(event: SessionEvent): void;
  onPage(what: string, detail?: string): void;
  /** The conversation ended for a reason the page did not choose. */
  onEnded(reason: string): void;
}

/** Thrown when the browser could not join the room the server handed it. */
export class RoomError extends Error {}

/** Thrown when the microphone cannot be used; the conversation goes on without it. */
export class MicrophoneError extends Error {}

const WORDS_PER_CHUNK = 3;
const CHUNK_GAP_MS = 80; // roughly how fast a fast LLM writes

export class Conversation {
  readonly session: Created;
  private readonly room = new Room({ adaptiveStream: false, dynacast: false });
  private readonly events = new AbortController();
  private stopMeters = new Map<string, () => void>();
  private ending = false;

  private constructor(
    session: Created,
    private readonly view: ConversationView,
  ) {
    this.session = session;
  }

  /** Creates the session and joins its room. Throws ApiError (the session could not be
   * made) or RoomError (the browser could not join); nothing is left open then. */
  static async start(voice: string | undefined, view: ConversationView): Promise<Conversation> {
    audioContext(); // from the click that started us, so the page may play audio
    const created = await callJson<Created>("POST", "/sessions", voice ? { voice } : {});
    const conversation = new Conversation(created, view);
    view.onPage("page: session created", `room ${created.room}`);
    conversation.followEvents();
    try {
      await conversation.join();
    } catch (err) {
      await conversation.end();
      throw new RoomError(`could not join LiveKit at ${created.url}: ${(err as Error).message}`);
    }
    return conversation;
  }

  private followEvents(): void {
    followEvents(this.session.session_id, (e) => this.onEvent(e), this.events.signal)
      .then(() => this.closed("the session ended"))
      .catch((err: Error) => {
        if (!this.events.signal.aborted) this.closed(`event stream failed: ${err.message}`);
      });
  }

  private onEvent(event: SessionEvent): void {
    if (event.type === "user_transcript" && typeof event.text === "string") {
      this.view.captions.userTranscript(event.text);
    }
    this.view.onEvent(event);
  }

  private async join(): Promise<void> {
    const room = this.room;
    room
      .on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => this.play(track))
      .on(RoomEvent.TrackUnsubscribed, (track: RemoteTrack) => this.unplay(track))
      .on(RoomEvent.Reconnecting, () => this.view.onPage("page: livekit reconnecting"))
      .on(RoomEvent.Reconnected, () => this.view.onPage("page: livekit reconnected"))
      .on(RoomEvent.Disconnected, (reason) => this.closed(`disconnected from LiveKit (reason ${reason ?? "unknown"})`));
    this.view.captions.attach(room);
    await room.connect(this.session.url, this.session.token, { autoSubscribe: true });
    this.view.onPage("page: joined room", `as ${this.session.identity}`);
    await room.startAudio();
  }

  /** Publishes the microphone (Chromium asks for permission). Throws MicrophoneError. */
  async enableMicrophone(on: boolean): Promise<void> {
    let publication: LocalTrackPublication | undefined;
    try {
      publication = await this.room.localParticipant.setMicrophoneEnabled(on);
    } catch (err) {
      const e = err as Error;
      const denied = e.name === "NotAllowedError" || e.name === "SecurityError";
      throw new MicrophoneError(denied ? "microphone access was denied" : `microphone unavailable: ${e.message}`);
    }
    this.stopMeters.get("mic")?.();
    this.stopMeters.delete("mic");
    const track = publication?.track?.mediaStreamTrack;
    if (on && track) this.stopMeters.set("mic", meterTrack(track, this.view.micMeter));
  }

  private play(track: RemoteTrack): void {
    if (track.kind !== Track.Kind.Audio) return;
    const element = track.attach();
    element.setAttribute("aria-label", "Agent's voice");
    this.view.audioHolder.append(element);
    this.stopMeters.get(track.sid ?? "agent")?.();
    this.stopMeters.set(track.sid ?? "agent", meterTrack(track.mediaStreamTrack, this.view.agentMeter));
    this.view.onPage("page: playing agent audio");
  }

  private unplay(track: RemoteTrack): void {
    track.detach().forEach((element) => element.remove());
    this.stopMeters.get(track.sid ?? "agent")?.();
    this.stopMeters.delete(track.sid ?? "agent");
  }

  /** Speaks `text`; streamed, it goes out a few words at a time as an LLM would write it. */
  async say(text: string, options: { stream: boolean; interruptible: boolean }): Promise<void> {
    const base = `/sessions/${encodeURIComponent(this.session.session_id)}`;
    if (!options.stream) {
      await call("POST", `${base}/say`, { text, interruptible: options.interruptible });
      return;
    }
    const chunks = text.match(new RegExp(`(\\S+\\s*){1,${WORDS_PER_CHUNK}}`, "g")) ?? [text];
    const first = chunks.shift()!;
    const accepted = await callJson<{ utterance_id: string }>("POST", `${base}/say`, {
      text: first,
      interruptible: options.interruptible,
      final: chunks.length === 0,
    });
    const path = `${base}/utterances/${encodeURIComponent(accepted.utterance_id)}/text`;
    for (const [i, chunk] of chunks.entries()) {
      await new Promise((resolve) => setTimeout(resolve, CHUNK_GAP_MS));
      await call("POST", path, { text: chunk, final: i === chunks.length - 1 });
    }
  }

  private closed(reason: string): void {
    if (this.ending) return;
    void this.end();
    this.view.onEnded(reason);
  }

  /** Leaves the room and ends the session (best effort: the server may be gone already). */
  async end(): Promise<void> {
    if (this.ending) return;
    this.ending = true;
    this.events.abort();
    for (const stop of this.stopMeters.values()) stop();
    this.stopMeters.clear();
    this.view.audioHolder.replaceChildren();
    await this.room.disconnect();
    try {
      await call("DELETE", `/sessions/${encodeURIComponent(this.session.session_id)}`);
    } catch {
      // Already over on the server (it failed, or its owner went away): nothing left to end.
    }
  }
}
