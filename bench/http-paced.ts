/**
 * An open-loop load generator for one question autocannon answers poorly: the latency at a fixed rate.
 * Requests are scheduled evenly (request i at start + i / rate) whether or not earlier ones have been
 * answered, and each latency is measured from its scheduled time, so a stall is charged to every request
 * it delays (no coordinated omission). autocannon's `overallRate` instead lets every connection send its
 * whole per-second quota back to back at the start of each second, then wait: the server sees bursts at
 * full concurrency, not the rate.
 */
import http from "node:http";

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

export async function paced(opts: {
  base: string;
  rate: number;
  seconds: number;
  /** Sockets at most (requests beyond wait in the agent's queue, and that wait counts). */
  maxSockets: number;
  request: () => PacedRequest;
  /** Waits this long for the last answers after the schedule ends. */
  drainMs?: number;
}): Promise<PacedResult> {
  const url = new URL(opts.base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets });
  const latencies: number[] = [];
  let sent = 0;
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let answered = 0;
  const total = Math.round(opts.rate * opts.seconds);
  const t0 = performance.now() + 20;

  const send = (i: number) => {
    const scheduled = t0 + (i * 1000) / opts.rate;
    const r = opts.request();
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: r.method,
        path: r.path,
        headers:
          r.body !== undefined ? { ...r.headers, "content-length": Buffer.byteLength(r.body) } : r.headers,
        agent,
      },
      (res) => {
        res.resume();
        res.on("end", () => {
          answered++;
          latencies.push(performance.now() - scheduled);
          if (res.statusCode! >= 200 && res.statusCode! < 300) ok++;
          else non2xx++;
        });
      },
    );
    req.on("error", () => {
      answered++;
      errors++;
    });
    req.end(r.body);
  };

  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * opts.rate) / 1000) + 1);
      while (sent < due) send(sent++);
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    setTimeout(tick, 20);
  });
  const end = performance.now();
  const deadline = end + (opts.drainMs ?? 10_000);
  while (answered < sent && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  agent.destroy();
  const sorted = latencies.sort((a, b) => a - b);
  return {
    rate: opts.rate,
    seconds: (end - t0) / 1000,
    sent,
    answered,
    ok,
    non2xx,
    errors,
    achieved: ok / ((end - t0) / 1000),
    latency: {
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    },
  };
}
