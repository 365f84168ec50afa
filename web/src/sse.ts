// Server-Sent Events read with fetch, so the bearer token travels in the Authorization
// header (EventSource cannot send one, and a token in the URL would end up in logs).
// Parsing follows the HTML standard's event-stream rules; reconnection sends the last
// event's id as Last-Event-ID, so the host sends exactly what was missed.

export interface StreamEvent {
  event: string;
  data: string;
  id: string;
}

export type StreamState = "connecting" | "live" | "reconnecting" | "closed";

export interface FollowOptions {
  path: string;
  headers: () => Promise<Record<string, string>>;
  /** Where to resume: the id of the last event already known, if any. */
  lastEventId?: string;
  onEvent: (event: StreamEvent) => void;
  onState: (state: StreamState, detail?: string) => void;
}

/** What to wait before reconnecting unless the host said otherwise (`retry:`). */
const DEFAULT_RETRY_MS = 1_000;
/** The longest wait between reconnections after repeated failures. */
const MAX_RETRY_MS = 15_000;
/** A stream silent for this long (no event, no heartbeat) is dropped and reopened. */
const SILENCE_LIMIT_MS = 60_000;

/** Splits an event stream into events. Feed it decoded text; it calls `dispatch` per event
 * and `onField` for `id` and `retry`, which outlive the event they came with. */
export class EventStreamParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  lastEventId = "";
  retryMs: number | null = null;

  constructor(private readonly dispatch: (event: StreamEvent) => void) {}

  push(text: string): void {
    this.buffer += text;
    // A line ends at CRLF, LF or CR; a CR at the very end may be half of a CRLF.
    for (;;) {
      const match = /\r\n|\n|\r(?!$)/.exec(this.buffer);
      if (!match) {
        return;
      }
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data.length > 0) {
        this.dispatch({ event: this.event || "message", data: this.data.join("\n"), id: this.lastEventId });
      }
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) {
      return; // a comment: the host's heartbeat
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) {
          this.lastEventId = value;
        }
        break;
      case "retry":
        if (/^\d+$/.test(value)) {
          this.retryMs = Number(value);
        }
        break;
    }
  }
}

/** Follows a stream until the returned function is called, reconnecting with
 * Last-Event-ID whenever it ends. A 401 is retried with fresh headers; other 4xx end it. */
export function followStream(options: FollowOptions): () => void {
  const stop = new AbortController();
  let lastEventId = options.lastEventId ?? "";
  let retryMs = DEFAULT_RETRY_MS;
  let failures = 0;

  const run = async () => {
    while (!stop.signal.aborted) {
      options.onState(failures === 0 ? "connecting" : "reconnecting");
      const attempt = new AbortController();
      const abortAttempt = () => attempt.abort();
      stop.signal.addEventListener("abort", abortAttempt);
      let silence: ReturnType<typeof setTimeout> | undefined;
      const heard = () => {
        clearTimeout(silence);
        silence = setTimeout(abortAttempt, SILENCE_LIMIT_MS);
      };
      try {
        const headers: Record<string, string> = {
          ...(await options.headers()),
          Accept: "text/event-stream",
        };
        if (lastEventId) {
          headers["Last-Event-ID"] = lastEventId;
        }
        const response = await fetch(options.path, { headers, signal: attempt.signal, cache: "no-store" });
        if (response.status >= 400 && response.status < 500 && response.status !== 401 && response.status !== 429) {
          const body = await response.json().catch(() => ({}));
          options.onState("closed", body.error ?? `HTTP ${response.status}`);
          return;
        }
        if (!response.ok || !response.body) {
          throw new Error(`HTTP ${response.status}`);
        }
        const parser = new EventStreamParser((event) => {
          failures = 0;
          lastEventId = event.id || lastEventId;
          options.onEvent(event);
        });
        parser.lastEventId = lastEventId;
        options.onState("live");
        heard();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) {
            break;
          }
          heard();
          parser.push(value);
          retryMs = parser.retryMs ?? retryMs;
        }
      } catch {
        failures += 1;
      } finally {
        clearTimeout(silence);
        stop.signal.removeEventListener("abort", abortAttempt);
      }
      if (stop.signal.aborted) {
        break;
      }
      options.onState("reconnecting");
      const wait = Math.min(retryMs * 2 ** Math.max(0, failures - 1), MAX_RETRY_MS);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    options.onState("closed");
  };
  void run();
  return () => stop.abort();
}
