/** Small helpers shared by the benchmark: progress output, formatting, a seeded random source. */

const started = performance.now();

/** One progress line, prefixed with the seconds since the benchmark started. */
export function log(message: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${s}s] ${message}`);
}

export function elapsedSeconds(): number {
  return (performance.now() - started) / 1000;
}

/** 12345.6 → "12,346" */
export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

export function fmtPct(fraction: number, digits = 1): string {
  return `${(fraction * 100).toFixed(digits)}%`;
}

/** mulberry32: a tiny deterministic PRNG, so every run draws the same account sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Prints a progress line about once a second while `fn` runs (when the event loop gets a turn). */
export async function withProgress<T>(
  label: string,
  done: () => number,
  total: number,
  fn: () => Promise<T>,
): Promise<T> {
  const t0 = performance.now();
  let last = { t: t0, n: 0 };
  const timer = setInterval(() => {
    const now = performance.now();
    const n = done();
    const rate = (n - last.n) / ((now - last.t) / 1000);
    last = { t: now, n };
    log(
      `  ${label}: ${fmtInt(n)} / ${fmtInt(total)} (now ${fmtInt(rate)}/s, average ${fmtInt(n / ((now - t0) / 1000))}/s)`,
    );
  }, 1000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message.split("\n")[0]!;
  return String(err);
}
