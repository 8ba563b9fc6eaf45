// The orchestrator's public API as the page uses it: JSON calls and the session event
// stream, each with the tab's API key (if any) in the Authorization header.

const KEY_STORAGE = "voice-orchestrator.api-key";

/** An answer that is not 2xx, with the server's error body read out. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** The server wants a (valid) key: 401. */
  get needsKey(): boolean {
    return this.status === 401;
  }
}

/** The key lives in this tab's session storage only: gone when the tab closes. */
export const apiKey = {
  get(): string | null {
    return sessionStorage.getItem(KEY_STORAGE);
  },
  set(key: string): void {
    sessionStorage.setItem(KEY_STORAGE, key);
  },
  clear(): void {
    sessionStorage.removeItem(KEY_STORAGE);
  },
};

function headers(json: boolean): Headers {
  const h = new Headers();
  const key = apiKey.get();
  if (key) h.set("Authorization", `Bearer ${key}`);
  if (json) h.set("Content-Type", "application/json");
  return h;
}

async function errorOf(response: Response): Promise<ApiError> {
  let code = "http_error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.message) message = body.error.message;
    if (body.error?.code) code = body.error.code;
  } catch {
    // Not our JSON error body (a proxy's page): the status line says enough.
  }
  if (response.status === 429) {
    const wait = response.headers.get("Retry-After");
    if (wait) message += ` (retry in ${wait} s)`;
  }
  return new ApiError(response.status, code, message);
}

/** Any call: resolves to the response when it is 2xx, else throws ApiError. */
export async function call(
  method: string,
  path: string,
  body?: unknown,
  signal?: AbortSignal,
): Promise<Response> {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function callJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  return (await (await call(method, path, body)).json()) as T;
}

export interface SessionEvent {
  type: string;
  seq: number;
  at: number;
  [field: string]: unknown;
}

/**
 * Follows GET /sessions/{id}/events. EventSource cannot send an Authorization header, so
 * the stream is read with fetch and parsed here (the text/event-stream format: fields
 * per line, events separated by a blank line). Resolves when the server ends the stream.
 */
export async function followEvents(
  sessionId: string,
  onEvent: (event: SessionEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const response = await call("GET", `/sessions/${encodeURIComponent(sessionId)}/events`, undefined, signal);
  if (!response.body) throw new Error("the event stream has no body");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) onEvent(JSON.parse(data) as SessionEvent);
    }
  }
}
