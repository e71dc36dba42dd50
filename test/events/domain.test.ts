/** Pure rules: forecasts, slope, trend, alert crossings, the retry schedule (property-tested where it fits). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DAY_MS,
  HOUR_MS,
  calendarMonth,
  dailySeries,
  hourStart,
  peakDays,
  previousPeriod,
  projectToEnd,
  runOut,
  slope,
  trailingRate,
  type Bucket,
} from "../../src/domain/analytics.ts";
import { isBreached, transition, validateCondition, type AlertMetrics } from "../../src/domain/alerts.ts";
import { MAX_ATTEMPTS, nextAttemptAt, totalRetryWindowMs } from "../../src/webhooks/schedule.ts";

const T0 = Date.UTC(2030, 4, 10, 13, 20);

describe("analytics arithmetic", () => {
  it("slope of points on a line is the line's slope", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1000, max: 1000 }),
        fc.integer({ min: -1e6, max: 1e6 }),
        fc.integer({ min: 2, max: 60 }),
        (m, b, n) => {
          const pts = Array.from({ length: n }, (_, x) => ({ x, y: m * x + b }));
          expect(slope(pts)).toBeCloseTo(m, 6);
        },
      ),
    );
    expect(slope([{ x: 1, y: 5 }])).toBe(0);
  });

  it("a constant burn gives the exact rate and a run-out within 1%", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10_000, max: 10_000_000_000 }), // micro-credits per hour
        fc.integer({ min: 2, max: 400 }), // hours of history
        fc.bigInt({ min: 1n, max: 10n ** 15n }),
        (perHour, hours, available) => {
          // Usage at a constant rate from `since` to T0, summed into hourly buckets as the rollup does.
          const since = T0 - hours * HOUR_MS - 7 * 60_000;
          const buckets: Bucket[] = [];
          for (let h = hourStart(since); h < T0; h += HOUR_MS) {
            const overlap = Math.min(h + HOUR_MS, T0) - Math.max(h, since);
            buckets.push({ at: h, credits: BigInt(Math.round((perHour * overlap) / HOUR_MS)), count: 1 });
          }
          const r = trailingRate(buckets, T0, 7 * DAY_MS, since);
          expect(Math.abs(r.rate_per_ms * HOUR_MS - perHour)).toBeLessThanOrEqual(perHour * 0.001 + 1);
          const f = runOut(available, r.rate_per_ms, T0);
          const trueMs = (Number(available) / perHour) * HOUR_MS;
          expect(Math.abs(f.run_out_at! - T0 - trueMs)).toBeLessThanOrEqual(trueMs * 0.01 + 1);
        },
      ),
    );
  });

  it("run-out: nothing spent -> no forecast; nothing left -> now", () => {
    expect(runOut(100n, 0, T0).run_out_at).toBeNull();
    expect(runOut(0n, 5, T0).run_out_at).toBe(T0);
    expect(projectToEnd(10n, 1, T0, T0 + 1000)).toBe(1010n);
    expect(projectToEnd(10n, 1, T0 + 2000, T0 + 1000)).toBe(10n);
  });

  it("periods: calendar months and the one before", () => {
    const m = calendarMonth(Date.UTC(2030, 2, 31, 23, 59));
    expect(m).toEqual({ start: Date.UTC(2030, 2, 1), end: Date.UTC(2030, 3, 1) });
    expect(previousPeriod(m)).toEqual({ start: Date.UTC(2030, 1, 1), end: Date.UTC(2030, 2, 1) });
    expect(previousPeriod({ start: 1000, end: 3000 })).toEqual({ start: -1000, end: 1000 });
  });

  it("daily series sums hours into every day; peaks skip idle days", () => {
    const day = Date.UTC(2030, 0, 5);
    const b = (h: number, c: bigint): Bucket => ({ at: day + h * HOUR_MS, credits: c, count: 1 });
    const days = dailySeries([b(1, 5n), b(23, 5n), b(49, 7n)], day, day + 3 * DAY_MS);
    expect(days.map((d) => d.credits)).toEqual([10n, 0n, 7n]);
    expect(peakDays(days, 5).map((d) => d.credits)).toEqual([10n, 7n]);
  });
});

describe("alert crossings", () => {
  const base: AlertMetrics = {
    now: T0,
    available: 100n,
    allowance: 1000n,
    used_in_period: 900n,
    next_expiry_at: null,
    run_out_at: null,
    recent_rate: 0,
    trailing_rate: 0,
    budgets: new Map(),
  };

  it("each rule kind reads its metric", () => {
    expect(isBreached({ kind: "balance_below", amount: 101n }, base)).toBe(true);
    expect(isBreached({ kind: "balance_below", amount: 100n }, base)).toBe(true); // at or below
    expect(isBreached({ kind: "balance_below", amount: 99n }, base)).toBe(false);
    expect(isBreached({ kind: "balance_below_percent", percent: 10 }, base)).toBe(false); // exactly 10%
    expect(isBreached({ kind: "balance_below_percent", percent: 10.5 }, base)).toBe(true);
    expect(isBreached({ kind: "usage_above_percent", percent: 90 }, base)).toBe(true);
    expect(isBreached({ kind: "usage_above_percent", percent: 91 }, base)).toBe(false);
    expect(isBreached({ kind: "depleted" }, { ...base, available: 0n })).toBe(true);
    expect(isBreached({ kind: "grant_expiring", days: 2 }, { ...base, next_expiry_at: T0 + DAY_MS })).toBe(
      true,
    );
    expect(
      isBreached({ kind: "grant_expiring", days: 2 }, { ...base, next_expiry_at: T0 + 3 * DAY_MS }),
    ).toBe(false);
    expect(isBreached({ kind: "runout_within", hours: 5 }, { ...base, run_out_at: T0 + 4 * HOUR_MS })).toBe(
      true,
    );
    expect(
      isBreached({ kind: "burn_rate_above", multiple: 3 }, { ...base, recent_rate: 4, trailing_rate: 1 }),
    ).toBe(true);
    expect(
      isBreached({ kind: "burn_rate_above", multiple: 3 }, { ...base, recent_rate: 3, trailing_rate: 1 }),
    ).toBe(false);
    const budgets = new Map([["bdg_1", [80n, 100n] as [bigint, bigint]]]);
    expect(
      isBreached({ kind: "budget_used_percent", percent: 80, budget_id: "bdg_1" }, { ...base, budgets }),
    ).toBe(true);
  });

  it("fires once per crossing and recovers once: transitions over any reading sequence alternate", () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 200 }), (readings) => {
        let state: "armed" | "fired" = "armed";
        const out: string[] = [];
        for (const r of readings) {
          const t = transition(state, r);
          if (t === "trigger") state = "fired";
          if (t === "recover") state = "armed";
          if (t) out.push(t);
        }
        // Alternating, starting with trigger; as many triggers as rising edges.
        out.forEach((x, i) => expect(x).toBe(i % 2 === 0 ? "trigger" : "recover"));
        let edges = 0;
        readings.forEach((r, i) => {
          if (r && (i === 0 || !readings[i - 1])) edges++;
        });
        expect(out.filter((x) => x === "trigger").length).toBe(edges);
      }),
    );
  });

  it("conditions are validated with the field at fault", () => {
    expect(() => validateCondition({ kind: "balance_below", amount: 0n })).toThrow(/amount/);
    expect(() => validateCondition({ kind: "usage_above_percent", percent: -1 })).toThrow(/percent/);
    expect(() => validateCondition({ kind: "burn_rate_above", multiple: 1 })).toThrow(/multiple/);
    expect(() => validateCondition({ kind: "nope" as never })).toThrow(/kind/);
    expect(validateCondition({ kind: "grant_expiring", days: 3, amount: 5n })).toEqual({
      kind: "grant_expiring",
      days: 3,
    });
  });
});

describe("retry schedule", () => {
  it("retries for at least 24 hours with growing delays, then gives up", () => {
    expect(totalRetryWindowMs()).toBeGreaterThanOrEqual(24 * HOUR_MS);
    let prev = 0;
    for (let a = 1; a < MAX_ATTEMPTS; a++) {
      const d = nextAttemptAt(a, 0)!;
      expect(d).toBeGreaterThanOrEqual(prev);
      prev = d;
    }
    expect(nextAttemptAt(1, 0)).toBe(5000);
    expect(nextAttemptAt(MAX_ATTEMPTS, 0)).toBeNull();
    expect(nextAttemptAt(0, 0)).toBeNull();
    const jittered = nextAttemptAt(3, 1000, 0.99)!;
    expect(jittered).toBeGreaterThan(121_000);
    expect(jittered).toBeLessThanOrEqual(1000 + 120_000 * 1.1);
  });
});
