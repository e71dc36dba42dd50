/**
 * Live-session math (DESIGN.md §1 "Live sessions"), pure: billable time from answer, hang-up and hold
 * intervals; the price of a whole call through the rate card; the longest call an amount covers; the
 * next grant. No I/O; the service in src/sessions owns the ledger and the store.
 */
import { MAX_AMOUNT } from "./amount.ts";
import { TallyError } from "./errors.ts";
import { priceEvent, serviceRate, type RateCard, type ServiceRate } from "./pricing.ts";

export const SESSION_LIMITS = {
  /** Longest billable time of one session: nothing is granted beyond it (then `final`). */
  MAX_SESSION_SECONDS: 24 * 3600,
  DEFAULT_GRANT_SECONDS: 60,
  MIN_GRANT_SECONDS: 1,
  MAX_GRANT_SECONDS: 3600,
  /** How long a session stays valid without an update (then it is settled as abandoned). */
  DEFAULT_VALIDITY_SECONDS: 60,
  MIN_VALIDITY_SECONDS: 5,
  MAX_VALIDITY_SECONDS: 3600,
  /** Usage is committed (captured) once this many billable seconds are uncommitted. */
  DEFAULT_DEBIT_INTERVAL_SECONDS: 60,
  MIN_DEBIT_INTERVAL_SECONDS: 10,
  MAX_DEBIT_INTERVAL_SECONDS: 3600,
  /** Hold intervals one session may report. */
  MAX_HOLD_INTERVALS: 100,
  /** Per-account cap on concurrent sessions the operator may set. */
  MAX_CONCURRENT_LIMIT: 100_000,
} as const;

export type Direction = "inbound" | "outbound";

/** A time on hold, epoch ms; `end` null while the call is still on hold. */
export interface HoldInterval {
  start: number;
  end: number | null;
}

/**
 * Billable milliseconds: answer → `until`, minus the union of the hold intervals (clipped to that span;
 * overlapping holds count once; an open hold lasts until `until`). Never answered: 0.
 */
export function billableMs(answeredAt: number | null, until: number, holds: readonly HoldInterval[]): number {
  if (answeredAt === null || until <= answeredAt) return 0;
  const clipped = holds
    .map((h) => [Math.max(h.start, answeredAt), Math.min(h.end ?? until, until)] as const)
    .filter(([s, e]) => e > s)
    .sort((a, b) => a[0] - b[0]);
  let onHold = 0;
  let curStart = -Infinity;
  let curEnd = -Infinity;
  for (const [s, e] of clipped) {
    if (s > curEnd) {
      if (curEnd > curStart) onHold += curEnd - curStart;
      curStart = s;
      curEnd = e;
    } else if (e > curEnd) curEnd = e;
  }
  if (curEnd > curStart) onHold += curEnd - curStart;
  return until - answeredAt - onHold;
}

/** Billable whole seconds: a started second counts (the rate card's increment then rounds further). */
export function billableSeconds(
  answeredAt: number | null,
  until: number,
  holds: readonly HoldInterval[],
): number {
  return Math.ceil(billableMs(answeredAt, until, holds) / 1000);
}

/** The price of a whole call of `seconds` billable seconds, in micro-credits; monotone in seconds. */
export type CallPrice = (seconds: number) => bigint;

/** Above any amount an account can hold: what a duration the rate card cannot price costs. */
const UNPAYABLE = MAX_AMOUNT + 1n;

/**
 * The service rate a session bills by. Inbound: the service itself; outbound: the service's own
 * `<service>.outbound` rate, free when the card has none. The rate must take one quantity in seconds.
 * Returns null for a free call.
 */
export function sessionRate(card: RateCard, service: string, direction: Direction): ServiceRate | null {
  let rate: ServiceRate;
  if (direction === "outbound") {
    const own = `${service}.outbound`;
    serviceRate(card, service); // the service itself must exist in either direction
    if (!Object.hasOwn(card.services, own)) return null;
    rate = card.services[own]!;
  } else rate = serviceRate(card, service);
  if (rate.input !== "quantity" || rate.dimensions[0]!.unit !== "second")
    throw TallyError.validation(
      "service",
      `must be priced per second (one quantity with unit "second") to be metered live`,
    );
  return rate;
}

/**
 * The whole-call price through the rate card: 0 billable seconds costs nothing (an unanswered call, or one
 * spent on hold); otherwise increments, minimum, modifiers and the per-call fee apply once, to the whole
 * call. Cached per duration (a session prices the same durations again and again).
 */
export function callPricer(rate: ServiceRate | null, metadata: Record<string, unknown>): CallPrice {
  if (rate === null) return () => 0n;
  const cache = new Map<number, bigint>();
  return (seconds) => {
    if (seconds <= 0) return 0n;
    let p = cache.get(seconds);
    if (p === undefined) {
      try {
        p = priceEvent(rate, { quantity: seconds, metadata }).cost;
      } catch (err) {
        // Priced above the largest amount: no balance covers it.
        if (err instanceof TallyError && err.code === "validation_error") p = UNPAYABLE;
        else throw err;
      }
      if (cache.size > 4096) cache.clear();
      cache.set(seconds, p);
    }
    return p;
  };
}

/** The largest s in [0, cap] whose price is at most `budget` (price is monotone: binary search). */
export function maxCoveredSeconds(price: CallPrice, budget: bigint, cap: number): number {
  if (price(cap) <= budget) return cap;
  let lo = 0; // covered (price(0) = 0 ≤ any budget ≥ 0)
  let hi = cap; // not covered
  if (budget < 0n) return 0;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (price(mid) <= budget) lo = mid;
    else hi = mid;
  }
  return lo;
}

export interface GrantInput {
  /** Billable seconds used so far. */
  used_seconds: number;
  /** Seconds already authorized (held or committed). */
  authorized_seconds: number;
  /** The grant asked for: seconds beyond what is used. */
  grant_seconds: number;
  /** The longest call the session's money (committed + held + available) covers. */
  covered_seconds: number;
  cap_seconds: number;
}

export interface GrantDecision {
  /** New authorized total (never less than before). */
  authorized_seconds: number;
  /** Seconds left before the authorized total is used up. */
  seconds_left: number;
  /** No full further grant could be covered: the caller should warn and hang up after seconds_left. */
  final: boolean;
}

/**
 * The next grant (RFC 4006 style): authorize up to `used + grant` seconds, as far as the money and the cap
 * allow. `final` when that full grant cannot be given.
 */
export function nextGrant(i: GrantInput): GrantDecision {
  const target = Math.min(i.used_seconds + i.grant_seconds, i.cap_seconds);
  const reachable = Math.max(i.authorized_seconds, Math.min(target, i.covered_seconds));
  return {
    authorized_seconds: reachable,
    seconds_left: Math.max(0, reachable - i.used_seconds),
    final: reachable < i.used_seconds + i.grant_seconds,
  };
}
