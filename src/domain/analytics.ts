/**
 * Pure usage arithmetic: periods, rates, run-out forecasts, projections, trends and peaks. No I/O: the
 * analytics service feeds it hourly buckets and balances. Amounts are bigint micro-credits; rates are
 * micro-credits per millisecond as numbers (a rate is an estimate, not money).
 */

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** A billing period [start, end). */
export interface Period {
  start: number;
  end: number;
}

export function hourStart(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

export function dayStart(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** The calendar month (UTC) holding `ms`: the default cycle when no subscription period is known. */
export function calendarMonth(ms: number): Period {
  const d = new Date(ms);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const end = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return { start, end };
}

/** The period of the same length just before `p` (the previous month for a calendar month). */
export function previousPeriod(p: Period): Period {
  const startDate = new Date(p.start);
  const isMonth =
    startDate.getUTCDate() === 1 && startDate.getUTCHours() === 0 && calendarMonth(p.start).end === p.end;
  if (isMonth) return calendarMonth(p.start - 1);
  return { start: p.start - (p.end - p.start), end: p.start };
}

/** One bucket of usage: credits net of refunds, with the count of events. */
export interface Bucket {
  at: number;
  credits: bigint;
  count: number;
}

/** Micro-credits per millisecond spent between `from` and `to`, from buckets starting in [from, to). */
export function rateOver(buckets: readonly Bucket[], from: number, to: number): number {
  if (to <= from) return 0;
  let sum = 0n;
  for (const b of buckets) if (b.at >= from && b.at < to) sum += b.credits;
  return Number(sum) / (to - from);
}

/**
 * The burn rate a forecast is based on: what was spent in the trailing window, over the window's length.
 * The window starts no earlier than `since` (the account's first activity), so a young account's rate is
 * not diluted by time it did not exist. Buckets are hourly; the current hour counts up to `now`.
 */
export function trailingRate(
  buckets: readonly Bucket[],
  now: number,
  windowMs: number,
  since: number,
): { rate_per_ms: number; from: number; to: number } {
  // The window starts on an hour boundary (buckets are whole hours), or at the first activity if later.
  const from = Math.max(hourStart(now - windowMs), since);
  let sum = 0n;
  for (const b of buckets) if (b.at >= hourStart(from) && b.at <= now) sum += b.credits;
  const span = now - from;
  return { rate_per_ms: span > 0 ? Number(sum) / span : 0, from, to: now };
}

export interface RunOutForecast {
  /** When the available credits reach zero at the rate; null when nothing is being spent. */
  run_out_at: number | null;
  hours_left: number | null;
  rate_per_hour: bigint;
}

/** Available credits divided by the burn rate. */
export function runOut(available: bigint, ratePerMs: number, now: number): RunOutForecast {
  const ratePerHour = BigInt(Math.round(ratePerMs * HOUR_MS));
  if (available <= 0n) return { run_out_at: now, hours_left: 0, rate_per_hour: ratePerHour };
  if (!(ratePerMs > 0)) return { run_out_at: null, hours_left: null, rate_per_hour: ratePerHour };
  const ms = Number(available) / ratePerMs;
  return { run_out_at: Math.round(now + ms), hours_left: ms / HOUR_MS, rate_per_hour: ratePerHour };
}

/** Used so far plus the rate carried to the period's end. */
export function projectToEnd(usedSoFar: bigint, ratePerMs: number, now: number, periodEnd: number): bigint {
  if (now >= periodEnd) return usedSoFar;
  return usedSoFar + BigInt(Math.round(ratePerMs * (periodEnd - now)));
}

/** Least-squares slope of y over x (0 for fewer than two points or no spread in x). */
export function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const p of points) {
    sx += p.x;
    sy += p.y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) * (p.x - mx);
  }
  return den === 0 ? 0 : num / den;
}

/** Hourly buckets summed into UTC days within [from, to), every day present (zero when idle). */
export function dailySeries(buckets: readonly Bucket[], from: number, to: number): Bucket[] {
  const byDay = new Map<number, Bucket>();
  for (let d = dayStart(from); d < to; d += DAY_MS) byDay.set(d, { at: d, credits: 0n, count: 0 });
  for (const b of buckets) {
    if (b.at < from || b.at >= to) continue;
    const day = byDay.get(dayStart(b.at));
    if (!day) continue;
    day.credits += b.credits;
    day.count += b.count;
  }
  return [...byDay.values()];
}

/** The `n` days with the most credits, most first (ties: earlier day first); idle days are left out. */
export function peakDays(days: readonly Bucket[], n: number): Bucket[] {
  return days
    .filter((d) => d.credits > 0n)
    .sort((a, b) => (a.credits === b.credits ? a.at - b.at : a.credits > b.credits ? -1 : 1))
    .slice(0, n);
}

export interface Trend {
  this_period: bigint;
  /** The previous period up to the same point in it, so a half-finished period compares fairly. */
  last_period_to_date: bigint;
  /** (this - last) / last; null when the last period had nothing. */
  change_ratio: number | null;
  /** Least-squares slope of the daily credits of this period, micro-credits per day per day. */
  slope_per_day: number;
}

export function trend(buckets: readonly Bucket[], period: Period, previous: Period, now: number): Trend {
  const elapsed = Math.min(now, period.end) - period.start;
  let thisSum = 0n;
  let lastSum = 0n;
  for (const b of buckets) {
    if (b.at >= period.start && b.at < Math.min(now + 1, period.end)) thisSum += b.credits;
    if (b.at >= previous.start && b.at < Math.min(previous.start + elapsed, previous.end))
      lastSum += b.credits;
  }
  const days = dailySeries(buckets, period.start, Math.min(now + 1, period.end));
  const points = days.map((d, i) => ({ x: i, y: Number(d.credits) }));
  return {
    this_period: thisSum,
    last_period_to_date: lastSum,
    change_ratio: lastSum === 0n ? null : Number(thisSum - lastSum) / Number(lastSum),
    slope_per_day: slope(points),
  };
}
