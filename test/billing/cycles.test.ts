import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { daysUntil, period, periodAt, periodStart } from "../../src/domain/cycles.ts";

const iso = (ms: number) => new Date(ms).toISOString();

/** Reference: the naive rule, spelled out with year/month/day arithmetic and no Date overflow tricks. */
function reference(anchor: number, i: number): number {
  const a = new Date(anchor);
  const total = a.getUTCFullYear() * 12 + a.getUTCMonth() + i;
  const y = Math.floor(total / 12);
  const m = total % 12;
  const lengths = [
    31,
    (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28,
    31,
    30,
    31,
    30,
    31,
    31,
    30,
    31,
    30,
    31,
  ];
  const d = Math.min(a.getUTCDate(), lengths[m]!);
  const tod =
    a.getUTCHours() * 3600_000 +
    a.getUTCMinutes() * 60_000 +
    a.getUTCSeconds() * 1000 +
    a.getUTCMilliseconds();
  return Date.UTC(y, m, d) + tod;
}

const anchors = fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2090, 0, 1) });

describe("billing cycles", () => {
  it("an anchor on the 31st: 31 Jan → 29 Feb → 31 Mar → 30 Apr → 31 May, across two years, no drift", () => {
    const anchor = Date.UTC(2024, 0, 31, 9, 30);
    const starts = Array.from({ length: 25 }, (_, i) => iso(periodStart(anchor, i)).slice(0, 16));
    expect(starts).toEqual([
      "2024-01-31T09:30",
      "2024-02-29T09:30",
      "2024-03-31T09:30",
      "2024-04-30T09:30",
      "2024-05-31T09:30",
      "2024-06-30T09:30",
      "2024-07-31T09:30",
      "2024-08-31T09:30",
      "2024-09-30T09:30",
      "2024-10-31T09:30",
      "2024-11-30T09:30",
      "2024-12-31T09:30",
      "2025-01-31T09:30",
      "2025-02-28T09:30",
      "2025-03-31T09:30",
      "2025-04-30T09:30",
      "2025-05-31T09:30",
      "2025-06-30T09:30",
      "2025-07-31T09:30",
      "2025-08-31T09:30",
      "2025-09-30T09:30",
      "2025-10-31T09:30",
      "2025-11-30T09:30",
      "2025-12-31T09:30",
      "2026-01-31T09:30",
    ]);
  });

  it("April 15 renews on the 15th of every month", () => {
    const anchor = Date.UTC(2024, 3, 15);
    for (let i = 0; i < 24; i++) expect(new Date(periodStart(anchor, i)).getUTCDate()).toBe(15);
    expect(period(anchor, 0)).toEqual({ index: 0, start: anchor, end: Date.UTC(2024, 4, 15) });
  });

  it("matches the reference for any anchor and index", () => {
    fc.assert(
      fc.property(anchors, fc.integer({ min: 0, max: 1199 }), (anchor, i) => {
        expect(periodStart(anchor, i)).toBe(reference(anchor, i));
      }),
      { numRuns: 5000 },
    );
  });

  it("periods tile time: strictly increasing, each within 28-31 days, and periodAt finds the one containing an instant", () => {
    fc.assert(
      fc.property(anchors, fc.integer({ min: 0, max: 3 * 365 * 86_400_000 }), (anchor, offset) => {
        const at = anchor + offset;
        const p = periodAt(anchor, at)!;
        expect(p.start).toBeLessThanOrEqual(at);
        expect(at).toBeLessThan(p.end);
        expect(p.start).toBe(periodStart(anchor, p.index));
        const days = (p.end - p.start) / 86_400_000;
        expect(days).toBeGreaterThanOrEqual(28);
        expect(days).toBeLessThanOrEqual(31);
      }),
      { numRuns: 5000 },
    );
  });

  it("before the anchor there is no period; bad indexes are refused", () => {
    expect(periodAt(Date.UTC(2024, 0, 1), Date.UTC(2023, 11, 31))).toBeNull();
    expect(() => periodStart(0, -1)).toThrow(RangeError);
    expect(() => periodStart(0, 1.5)).toThrow(RangeError);
  });

  it("days until reset round up and stop at zero", () => {
    const t = Date.UTC(2024, 0, 1);
    expect(daysUntil(t, t + 86_400_000)).toBe(1);
    expect(daysUntil(t, t + 1)).toBe(1);
    expect(daysUntil(t, t + 86_400_001)).toBe(2);
    expect(daysUntil(t, t)).toBe(0);
    expect(daysUntil(t + 5, t)).toBe(0);
  });
});
