/**
 * Billing-cycle math, pure. Period i of a subscription starts at its anchor plus i calendar months (UTC),
 * clamped to the last day of a shorter month, with the anchor's time of day. Every period is computed
 * from the anchor, never from the previous period, so a 31st anchor renews on the 30th, the 28th/29th and
 * the 31st again: no drift.
 */

/** Most periods a subscription can have (a century of monthly periods): a limit on every loop. */
export const MAX_PERIOD_INDEX = 1200;

const MS_PER_DAY = 86_400_000;

function daysInMonth(year: number, month0: number): number {
  return new Date(Date.UTC(year, month0 + 1, 0)).getUTCDate();
}

/** Start of period `index` (0 = the anchor itself). */
export function periodStart(anchorMs: number, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index > MAX_PERIOD_INDEX)
    throw new RangeError(`period index must be an integer from 0 to ${MAX_PERIOD_INDEX}`);
  const a = new Date(anchorMs);
  const months = a.getUTCMonth() + index;
  const year = a.getUTCFullYear() + Math.floor(months / 12);
  const month0 = months % 12;
  const day = Math.min(a.getUTCDate(), daysInMonth(year, month0));
  const timeOfDay = anchorMs - Date.UTC(a.getUTCFullYear(), a.getUTCMonth(), a.getUTCDate());
  return Date.UTC(year, month0, day) + timeOfDay;
}

export interface Period {
  index: number;
  start: number;
  /** Exclusive: the next period's start. */
  end: number;
}

export function period(anchorMs: number, index: number): Period {
  return { index, start: periodStart(anchorMs, index), end: periodStart(anchorMs, index + 1) };
}

/**
 * The period containing `at` (start <= at < end), or null before the anchor or past the last period.
 * Estimated from the month difference, then corrected by at most a step each way.
 */
export function periodAt(anchorMs: number, at: number): Period | null {
  if (at < anchorMs) return null;
  const a = new Date(anchorMs);
  const t = new Date(at);
  let i = (t.getUTCFullYear() - a.getUTCFullYear()) * 12 + (t.getUTCMonth() - a.getUTCMonth());
  i = Math.max(0, Math.min(i, MAX_PERIOD_INDEX));
  while (i > 0 && periodStart(anchorMs, i) > at) i--;
  while (i < MAX_PERIOD_INDEX && periodStart(anchorMs, i + 1) <= at) i++;
  if (i >= MAX_PERIOD_INDEX) return null;
  return period(anchorMs, i);
}

/** Whole days from `at` until `until`, rounded up (a reset later today is 1 day away; 0 once due). */
export function daysUntil(at: number, until: number): number {
  return until <= at ? 0 : Math.ceil((until - at) / MS_PER_DAY);
}
