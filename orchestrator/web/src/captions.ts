// Live captions: the agent's words as it speaks them and the user's transcripts, from the
// room's `lk.transcription` text streams (and the session's `user_transcript` events).
// A session that sends neither leaves the captions empty; nothing here depends on them.

import type { Room, TextStreamReader } from "livekit-client";

export const TRANSCRIPTION_TOPIC = "lk.transcription";

export class Captions {
  constructor(
    private readonly agent: HTMLElement,
    private readonly user: HTMLElement,
  ) {}

  /** Registers the room's transcription handler: call before connecting. */
  attach(room: Room): void {
    room.registerTextStreamHandler(TRANSCRIPTION_TOPIC, (reader, participant) => {
      // The user's transcripts are sent on behalf of the user's identity; the rest is the agent's.
      const mine = participant.identity === room.localParticipant.identity;
      void this.follow(reader, mine ? this.user : this.agent);
    });
  }

  /** One segment: deltas appended as they arrive (they are paced with the audio). */
  private async follow(reader: TextStreamReader, target: HTMLElement): Promise<void> {
    let text = "";
    try {
      for await (const delta of reader) {
        text += delta;
        target.textContent = text;
      }
    } catch {
      // The room closed mid-segment: keep what arrived.
    }
  }

  /** A `user_transcript` session event (partial or final). */
  userTranscript(text: string): void {
    this.user.textContent = text;
  }

  clear(): void {
    this.agent.textContent = "";
    this.user.textContent = "";
  }
}
