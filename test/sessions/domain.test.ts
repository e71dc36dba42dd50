/** Session math against brute-force references (fast-check). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseRateCard, type RateCard } from "../../src/domain/pricing.ts";
import {
  billableMs,
  billableSeconds,
  callPricer,
  maxCoveredSeconds,
  nextGrant,
  sessionRate,
  type HoldInterval,
} from "../../src/domain/sessions.ts";

/** Reference: walk every millisecond and count those after answer, before the end and on no hold. */
function bruteBillableMs(answeredAt: number | null, until: number, holds: HoldInterval[]): number {
  if (answeredAt === null) return 0;
  let n = 0;
  for (let t = answeredAt; t < until; t++) {
    if (!holds.some((h) => t >= h.start && t < (h.end ?? until))) n++;
  }
  return n;
}

/** Reference price: per started increment, at least the minimum, price per `per` seconds, plus fee, rounded up. */
function brutePrice(
  seconds: number,
  r: { priceMicros: bigint; per: number; increment: number; minimum: number; feeMicros: bigint },
): bigint {
  if (seconds === 0) return 0n;
  let units = 0;
  while (units < seconds) units += r.increment; // per started increment
  const billed = Math.max(units, r.minimum);
  const num = BigInt(billed) * r.priceMicros + r.feeMicros * BigInt(r.per);
  const den = BigInt(r.per);
  return (num + den - 1n) / den;
}

function card(services: Record<string, unknown>): RateCard {
  return parseRateCard({ version: 2, effective_at: Date.UTC(2020, 0, 1), services } as never);
}

const rateArb = fc.record({
  priceMicros: fc.bigInt({ min: 0n, max: 5_000_000_000n }),
  per: fc.constantFrom(1, 6, 60),
  increment: fc.constantFrom(1, 6, 60),
  minimum: fc.integer({ min: 0, max: 120 }),
  feeMicros: fc.bigInt({ min: 0n, max: 10_000_000n }),
});

function voiceCard(r: Parameters<typeof brutePrice>[1]): RateCard {
  return card({
    voice: {
      unit: "second",
      price: (Number(r.priceMicros) / 1e6).toFixed(6),
      per: r.per,
      increment: r.increment,
      minimum: r.minimum,
      fee: (Number(r.feeMicros) / 1e6).toFixed(6),
    },
  });
}

describe("billable time", () => {
  it("is answer to hang-up minus the union of holds, to the millisecond", () => {
    const holdArb = fc
      .tuple(fc.integer({ min: -50, max: 400 }), fc.option(fc.integer({ min: 0, max: 200 })))
      .map(([s, len]) => ({ start: s, end: len === null ? null : s + len }));
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: 0, max: 100 })),
        fc.integer({ min: 0, max: 400 }),
        fc.array(holdArb, { maxLength: 6 }),
        (answered, until, holds) => {
          expect(billableMs(answered, until, holds)).toBe(bruteBillableMs(answered, until, holds));
        },
      ),
      { numRuns: 400 },
    );
  });

  it("counts a started second; ringing and hold are free", () => {
    const a = Date.UTC(2030, 0, 1);
    expect(billableSeconds(null, a + 60_000, [])).toBe(0);
    expect(billableSeconds(a, a + 1, [])).toBe(1);
    expect(billableSeconds(a, a + 61_001, [{ start: a + 10_000, end: a + 20_000 }])).toBe(52);
    expect(billableSeconds(a, a + 30_000, [{ start: a + 10_000, end: null }])).toBe(10);
  });
});

describe("call price", () => {
  it("equals the reference (increments, minimum, per-call fee on the whole call)", () => {
    fc.assert(
      fc.property(rateArb, fc.integer({ min: 0, max: 4000 }), (r, seconds) => {
        const price = callPricer(sessionRate(voiceCard(r), "voice", "inbound"), {});
        expect(price(seconds)).toBe(brutePrice(seconds, r));
      }),
      { numRuns: 300 },
    );
  });

  it("outbound uses <service>.outbound, free without one; the unit must be seconds", () => {
    const c = card({
      voice: { unit: "second", price: 6, per: 60, increment: 6 },
      "voice.outbound": { unit: "second", price: 1, per: 60, increment: 60 },
      tts: { unit: "character", price: 1, per: 1000 },
    });
    expect(callPricer(sessionRate(c, "voice", "outbound"), {})(61)).toBe(2_000_000n);
    const c2 = card({ voice: { unit: "second", price: 6, per: 60 } });
    expect(sessionRate(c2, "voice", "outbound")).toBeNull();
    expect(callPricer(null, {})(3600)).toBe(0n);
    expect(() => sessionRate(c, "tts", "inbound")).toThrow(/per second/);
    expect(() => sessionRate(c, "nope", "outbound")).toThrow(/not on the rate card/);
  });
});

describe("largest covered duration", () => {
  it("is the last second whose price fits the amount (linear reference)", () => {
    fc.assert(
      fc.property(
        rateArb,
        fc.bigInt({ min: 0n, max: 200_000_000n }),
        fc.integer({ min: 0, max: 1500 }),
        (r, budget, cap) => {
          const price = callPricer(sessionRate(voiceCard(r), "voice", "inbound"), {});
          let best = 0;
          for (let s = 0; s <= cap; s++) if (price(s) <= budget) best = s;
          expect(maxCoveredSeconds(price, budget, cap)).toBe(best);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("next grant", () => {
  it("authorizes used + grant when covered; final with the seconds left otherwise", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5000 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 1, max: 600 }),
        fc.integer({ min: 0, max: 8000 }),
        fc.integer({ min: 1, max: 8000 }),
        (used, extra, grant, covered, cap) => {
          const authorized = used + extra;
          const d = nextGrant({
            used_seconds: used,
            authorized_seconds: authorized,
            grant_seconds: grant,
            covered_seconds: covered,
            cap_seconds: cap,
          });
          // Reference: the largest total ≤ target that the money covers, never below what was authorized.
          const target = Math.min(used + grant, cap);
          let best = authorized;
          for (let s = authorized; s <= target; s++) if (s <= covered) best = s;
          expect(d.authorized_seconds).toBe(best);
          expect(d.seconds_left).toBe(Math.max(0, best - used));
          expect(d.final).toBe(best < used + grant);
        },
      ),
      { numRuns: 500 },
    );
  });
});
