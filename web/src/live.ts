import type { Credential } from "./api.ts";

export type LiveStatus = "connecting" | "live" | "polling" | "offline";

export interface LiveEvent {
  type: string;
  data: unknown;
}

const POLL_MS = 3000;
const RETRY_MS = 2000;

/**
 * Follow the account's server-sent event stream. EventSource cannot send an Authorization header, so
 * the stream is read with fetch and parsed here (the text/event-stream format: "event:" and "data:"
 * lines, a blank line ends an event). A server without the stream (404) is polled instead.
 */
export function followLive(
  credential: Credential,
  path: string,
  onEvent: (e: LiveEvent) => void,
  onStatus: (s: LiveStatus) => void,
): () => void {
  const ctrl = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const poll = () => {
    onStatus("polling");
    const tick = () => {
      if (stopped) return;
      onEvent({ type: "poll", data: null });
      timer = setTimeout(tick, POLL_MS);
    };
    timer = setTimeout(tick, POLL_MS);
  };

  const connect = async () => {
    onStatus("connecting");
    let res: Response;
    try {
      res = await fetch(path, {
        headers: { authorization: `Bearer ${credential.secret}`, accept: "text/event-stream" },
        signal: ctrl.signal,
        cache: "no-store",
      });
    } catch {
      if (stopped) return;
      onStatus("offline");
      timer = setTimeout(() => void connect(), RETRY_MS);
      return;
    }
    if (res.status === 404 || res.status === 405) return poll();
    // A credential the server refuses stays refused: stop (the other views say to sign in again).
    if (res.status === 401 || res.status === 403) return onStatus("offline");
    if (!res.ok || !res.body) {
      onStatus("offline");
      timer = setTimeout(() => void connect(), RETRY_MS * 2);
      return;
    }
    onStatus("live");
    onEvent({ type: "connected", data: null });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, "\n");
        let end: number;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const ev = parseBlock(block);
          if (ev) onEvent(ev);
        }
      }
    } catch {
      /* cut off: reconnect below */
    }
    if (stopped) return;
    onStatus("offline");
    timer = setTimeout(() => void connect(), RETRY_MS);
  };

  void connect();
  return () => {
    stopped = true;
    ctrl.abort();
    if (timer) clearTimeout(timer);
  };
}

function parseBlock(block: string): LiveEvent | null {
  let type = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // comments are keep-alives
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0 && type === "message") return null;
  const text = data.join("\n");
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* plain text */
  }
  return { type, data: parsed };
}
