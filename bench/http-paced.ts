/**
 * An open-loop load generator for one question autocannon answers poorly: the latency at a fixed rate.
 * Requests are scheduled evenly (request i at start + i / rate) whether or not earlier ones have been
 * answered, and each latency is measured from its scheduled time, so a stall is charged to every request
 * it delays (no coordinated omission). autocannon's `overallRate` instead lets every connection send its
 * whole per-second quota back to back at the start of each second, then wait: the server sees bursts at
 * full concurrency, not the rate.
 *
 * It writes requests on raw keep-alive sockets and reads answers with a minimal HTTP/1.1 parser
 * (status line and `content-length` framing; what the servers measured here send). Node's own HTTP client
 * cost as much CPU per request as a hello-world server and its garbage collections landed in the
 * latencies: with it, the hello-world's p99 at 5,000 req/s was 10–12 ms on the 2-core reference machine,
 * so it could not tell whether a server met a 10 ms target.
 */
import net from "node:net";

export interface PacedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface PacedResult {
  rate: number;
  seconds: number;
  sent: number;
  answered: number;
  ok: number;
  non2xx: number;
  errors: number;
  /** Answers per second actually achieved. */
  achieved: number;
  /** ms, from each request's scheduled time to its full response. */
  latency: { p50: number; p90: number; p99: number; max: number };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function encode(r: PacedRequest, host: string): Buffer {
  let head = `${r.method} ${r.path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const [k, v] of Object.entries(r.headers)) head += `${k}: ${v}\r\n`;
  const body = r.body === undefined ? undefined : Buffer.from(r.body);
  if (body) head += `content-length: ${body.length}\r\n`;
  head += "\r\n";
  return body ? Buffer.concat([Buffer.from(head, "latin1"), body]) : Buffer.from(head, "latin1");
}

const HEADER_END = Buffer.from("\r\n\r\n");
const CONTENT_LENGTH = /\r\ncontent-length: *(\d+)/i;

/** One keep-alive connection: requests go one at a time; each answer is framed by its content-length. */
class Connection {
  private buffered: Buffer = Buffer.alloc(0);
  private waiting: ((status: number) => void) | null = null;
  busy = false;
  /** The server closed it (an idle keep-alive connection past the server's timeout, say). */
  closed = false;
  readonly socket: net.Socket;

  constructor(port: number, host: string, onFail: (err: Error) => void) {
    this.socket = net.connect({ port, host, noDelay: true });
    this.socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.socket.on("error", onFail);
    this.socket.on("close", () => {
      this.closed = true;
      // A request in flight on it is lost: counted as an error (an error event may have done so already).
      if (this.waiting && !this.socket.errored) onFail(new Error("connection closed"));
      this.waiting = null;
    });
  }

  send(bytes: Buffer, done: (status: number) => void): void {
    this.busy = true;
    this.waiting = done;
    this.socket.write(bytes);
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const end = this.buffered.indexOf(HEADER_END);
    if (end < 0) return;
    const head = this.buffered.toString("latin1", 0, end);
    const length = CONTENT_LENGTH.exec(head);
    if (!length) throw new Error(`paced: an answer without content-length: ${head.slice(0, 200)}`);
    const total = end + 4 + Number(length[1]);
    if (this.buffered.length < total) return;
    if (this.buffered.length > total) throw new Error("paced: more bytes than one answer (pipelining?)");
    this.buffered = Buffer.alloc(0);
    const status = Number(head.slice(9, 12));
    const done = this.waiting!;
    this.waiting = null;
    this.busy = false;
    done(status);
  }
}

export async function paced(opts: {
  base: string;
  rate: number;
  seconds: number;
  /** Connections at most (requests beyond wait in a queue, and that wait counts). */
  maxSockets: number;
  request: () => PacedRequest;
  /**
   * Sends at the same rate, on the same connections, for this long first and leaves those answers out of
   * the result: the measurement starts on warm connections, as a client's pool would be.
   */
  warmupSeconds?: number;
  /** Waits this long for the last answers after the schedule ends. */
  drainMs?: number;
  /** For investigations: called with each answer's scheduled time (epoch ms) and latency (ms). */
  onAnswer?: (scheduledEpochMs: number, latencyMs: number) => void;
}): Promise<PacedResult> {
  const url = new URL(opts.base);
  const port = Number(url.port);
  const latencies: number[] = [];
  let sent = 0;
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let answered = 0;
  const warmup = Math.round(opts.rate * (opts.warmupSeconds ?? 0));
  const total = warmup + Math.round(opts.rate * opts.seconds);
  const idle: Connection[] = [];
  const all: Connection[] = [];
  const queue: { bytes: Buffer; scheduled: number; counted: boolean }[] = [];
  const fail = () => {
    errors++;
    answered++;
  };

  const dispatch = (conn: Connection, bytes: Buffer, scheduled: number, counted: boolean) => {
    conn.send(bytes, (status) => {
      const next = queue.shift();
      if (next) dispatch(conn, next.bytes, next.scheduled, next.counted);
      else idle.push(conn);
      if (!counted) return;
      answered++;
      const latency = performance.now() - scheduled;
      latencies.push(latency);
      opts.onAnswer?.(performance.timeOrigin + scheduled, latency);
      if (status >= 200 && status < 300) ok++;
      else non2xx++;
    });
  };
  const connection = (): Connection | undefined => {
    let free = idle.pop();
    while (free?.closed) {
      all.splice(all.indexOf(free), 1);
      free = idle.pop();
    }
    if (free) return free;
    if (all.length >= opts.maxSockets) return undefined;
    const conn = new Connection(port, url.hostname, fail);
    all.push(conn);
    return conn;
  };

  const t0 = performance.now() + 20;
  /** Requests issued, warm-up included; `sent` counts the measured ones. */
  let issued = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * opts.rate) / 1000) + 1);
      while (issued < due) {
        const scheduled = t0 + (issued * 1000) / opts.rate;
        const counted = issued >= warmup;
        issued++;
        if (counted) sent++;
        const bytes = encode(opts.request(), url.host);
        const conn = connection();
        if (conn) dispatch(conn, bytes, scheduled, counted);
        else queue.push({ bytes, scheduled, counted });
      }
      if (issued >= total) resolve();
      else setTimeout(tick, 1);
    };
    setTimeout(tick, 20);
  });
  const end = performance.now();
  const measuredFrom = t0 + (warmup * 1000) / opts.rate;
  const deadline = end + (opts.drainMs ?? 10_000);
  while (answered < sent && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  for (const c of all) c.socket.destroy();
  const sorted = latencies.sort((a, b) => a - b);
  return {
    rate: opts.rate,
    seconds: (end - measuredFrom) / 1000,
    sent,
    answered,
    ok,
    non2xx,
    errors,
    achieved: ok / ((end - measuredFrom) / 1000),
    latency: {
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    },
  };
}
