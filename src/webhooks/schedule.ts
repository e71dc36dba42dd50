/**
 * The retry schedule of a webhook delivery: the delay before each retry after a failed attempt. The sum
 * is over 24 hours (31.7 h), after which the delivery gives up and its endpoint is disabled.
 */
const S = 1000;
export const RETRY_DELAYS_MS: readonly number[] = [
  5 * S,
  30 * S,
  120 * S,
  600 * S,
  1800 * S,
  3600 * S,
  7200 * S,
  14_400 * S,
  28_800 * S,
  28_800 * S,
  28_800 * S,
];

/** Attempts in all: the first plus one per delay. */
export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;

/**
 * When to try again after the `attempts`-th failed attempt (1-based), or null to give up. A small jitter
 * (up to 10%, from `random` in [0, 1)) spreads retries of many deliveries that failed together.
 */
export function nextAttemptAt(attempts: number, failedAt: number, random = 0): number | null {
  if (!Number.isInteger(attempts) || attempts < 1 || attempts >= MAX_ATTEMPTS) return null;
  const delay = RETRY_DELAYS_MS[attempts - 1]!;
  return failedAt + delay + Math.floor(delay * 0.1 * Math.min(Math.max(random, 0), 0.999));
}

export function totalRetryWindowMs(): number {
  return RETRY_DELAYS_MS.reduce((a, b) => a + b, 0);
}
