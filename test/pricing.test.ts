/**
 * The pricing domain (DESIGN.md §1 "Pricing"): the default rate card against the seed's multipliers and
 * example arithmetic, increments, minimum, fee, modifiers and the order they apply in, multi-dimension
 * services, rounding once per event, version selection at its boundaries, bad events and bad rate cards.
 * Pure: no store, no server.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_AMOUNT, MICROS_PER_CREDIT } from "../src/domain/amount.ts";
import { DEFAULT_RATE_CARD, DEFAULT_RATE_CARD_JSON } from "../src/domain/default-rate-card.ts";
import { TallyError, type ErrorCode } from "../src/domain/errors.ts";
import {
  MAX_QUANTITY,
  PRICING_LIMITS,
  QTY_SCALE,
  UnknownServiceError,
  checkNextVersion,
  estimate,
  formatQuantity,
  parseQuantity,
  parseRateCard,
  parseServiceRate,
  priceEvent,
  priceUsage,
  pricedToJSON,
  rateCardAt,
  rateCardToJSON,
  seedMultipliers,
  type RateCard,
  type RateCardJSON,
  type ServiceRateJSON,
  type UsageQuantities,
} from "../src/domain/pricing.ts";

const C = MICROS_PER_CREDIT;
const T0 = Date.UTC(2030, 0, 1);

function expectError(f: () => unknown, code: ErrorCode, field?: string): TallyError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}${field ? ` on ${field}` : ""}, got success`).toBeInstanceOf(TallyError);
  const err = caught as TallyError;
  expect({ code: err.code, field: err.field }).toEqual({ code, field });
  return err;
}

/** A service parsed from its JSON form. */
function rate(json: ServiceRateJSON) {
  return parseServiceRate(json, "services.test");
}

/** Cost in micro-credits. */
function cost(json: ServiceRateJSON, usage: UsageQuantities): bigint {
  return priceEvent(rate(json), usage).cost;
}

function card(version: number, effective_at: number, services: Record<string, ServiceRateJSON>): RateCard {
  return parseRateCard({ version, effective_at, services });
}

/** The seed's `GET /api/v1/credits/multipliers` response, verbatim. */
const SEED_MULTIPLIERS = {
  voice_cloning_generation: 330,
  voice_conversion: 990,
  speech_translation: 3300,
  translation: 1650,
  speaker_diarization: 1650,
  speaker_extraction: 1650,
  denoise_audio: 330,
  spectral_denoise: 660,
  stem_extraction: 990,
  music_generation: 1320,
  transcription: 660,
  video_download: 6,
};

describe("the default rate card and the seed's Credits API", () => {
  const costs = seedMultipliers(DEFAULT_RATE_CARD);

  it("derives exactly the seed's multipliers, plus the keys its example code reads", () => {
    expect(costs).toEqual({
      ...SEED_MULTIPLIERS,
      // Read by the seed's estimate_service_cost(): not in its response, priced by the default card.
      text_to_speech: 330,
      voice_cloning_training: 3300,
      transcription_with_diarization: 2310,
    });
    for (const [k, v] of Object.entries(SEED_MULTIPLIERS)) expect(costs[k], k).toBe(v);
  });

  it("lists a variant's price per the service's `per`, leaves out multi-dimension services and fees", () => {
    const c = card(1, T0, {
      stt: {
        unit: "second",
        price: 660,
        per: 60,
        fee: 5,
        modifiers: [
          { key: "diarize", value: true, add_per_unit: { price: 1, per: 1 }, multiplier_key: "stt_diarized" },
          { key: "quality", value: "premium", multiply: "1.5", multiplier_key: "stt_premium" },
          { key: "rush", value: true, add_flat: 10 },
        ],
      },
      llm: { unit: "token", dimensions: { input: { price: 1 }, output: { price: 2 } } },
      training: { unit: "request", fee: "12.5" },
    });
    // 660 per 60 s + 1 per 1 s = 720 per 60 s; 660 × 1.5 = 990.
    expect(seedMultipliers(c)).toEqual({ stt: 660, stt_diarized: 720, stt_premium: 990, training: 12.5 });
  });

  // The seed's check_sufficient_credits / estimate_service_cost: (duration / 60) × costs[service] etc.
  const per: Record<string, number> = { music_generation: 30, video_download: 1, text_to_speech: 1000 };
  const perMinute = Object.keys(SEED_MULTIPLIERS).filter((s) => !(s in per));
  it.each(perMinute.flatMap((s) => [60, 120, 1800, 1, 59, 61].map((d) => [s, d] as const)))(
    "%s for %i s costs (duration / 60) × its multiplier",
    (service, duration) => {
      const priced = priceUsage(DEFAULT_RATE_CARD, { service, quantity: duration });
      // (d / 60) × m credits, exactly: d × m × 10^6 / 60 micro-credits (multipliers are multiples of 6).
      expect(priced.cost).toBe((BigInt(duration) * BigInt(costs[service]!) * C) / 60n);
      expect(priced.cost * 60n).toBe(BigInt(duration) * BigInt(costs[service]!) * C);
    },
  );

  it.each([
    ["voice_cloning_generation", 120, {}, 660n],
    ["transcription", 1800, {}, 19_800n],
    ["music_generation", 60, {}, 2640n],
    ["music_generation", 30, {}, 1320n],
    ["music_generation", 45, {}, 1980n],
    ["translation", 60, {}, 1650n],
    ["text_to_speech", 5000, {}, 1650n],
    ["text_to_speech", 1000, {}, 330n],
    ["video_download", 1, {}, 6n],
    ["video_download", 3, {}, 18n],
    ["transcription", 60, { speaker_diarization: true }, 2310n],
    ["transcription", 120, { speaker_diarization: "true" }, 4620n],
    ["music_generation", 30, { quality: "premium" }, 2640n],
  ] as const)("the seed's example: %s × %s %j = %s credits", (service, quantity, metadata, credits) => {
    expect(estimate(DEFAULT_RATE_CARD, { service, quantity, metadata }).cost).toBe(credits * C);
  });

  it("prices voice_cloning_training as a fixed fee, with no quantity", () => {
    const p = priceUsage(DEFAULT_RATE_CARD, { service: "voice_cloning_training" });
    expect(p.cost).toBe(3300n * C);
    expect(p.cost).toBe(BigInt(costs.voice_cloning_training!) * C);
    expect(p.breakdown).toEqual([{ kind: "fee", amount: 3300n * C }]);
  });

  it("bills time by the started second: (d / 60) × 660 rounded up to whole seconds", () => {
    // 90.5 s is billed as 91 s: 91 × 11 = 1,001 credits; 0.2 s as 1 s (11 credits).
    expect(priceUsage(DEFAULT_RATE_CARD, { service: "transcription", quantity: "90.5" }).cost).toBe(
      1001n * C,
    );
    expect(priceUsage(DEFAULT_RATE_CARD, { service: "transcription", quantity: 0.2 }).cost).toBe(11n * C);
    expect(priceUsage(DEFAULT_RATE_CARD, { service: "transcription", quantity: 0 }).cost).toBe(0n);
  });

  it("prices the example LLM by input and output tokens, each at its own price", () => {
    const llm = (quantities: Record<string, unknown>, metadata?: Record<string, unknown>) =>
      priceUsage(DEFAULT_RATE_CARD, { service: "llm_chat", quantities, metadata }).cost;
    expect(llm({ input_tokens: 2000 })).toBe(1n * C);
    expect(llm({ output_tokens: 2000 })).toBe(3n * C);
    expect(llm({ input_tokens: 1000, output_tokens: 1000 })).toBe(2n * C);
    expect(llm({ input_tokens: 1000, output_tokens: 1000 }, { model: "large" })).toBe(8n * C);
    // 1 input token = 0.0005 credits = 500 micro-credits, exactly.
    expect(llm({ input_tokens: 1, output_tokens: 0 })).toBe(500n);
  });

  it("is a valid card that survives its JSON form", () => {
    expect(parseRateCard(DEFAULT_RATE_CARD_JSON)).toEqual(DEFAULT_RATE_CARD);
    expect(parseRateCard(JSON.parse(JSON.stringify(rateCardToJSON(DEFAULT_RATE_CARD))))).toEqual(
      DEFAULT_RATE_CARD,
    );
  });
});

describe("billing increments and the minimum", () => {
  // 1 credit per second, so the cost in credits is the billed number of seconds.
  const perSecond = (extra: Partial<ServiceRateJSON>): ServiceRateJSON => ({
    unit: "second",
    price: 60,
    per: 60,
    ...extra,
  });

  it.each([
    [1, "0.5", 1n],
    [1, "1", 1n],
    [1, "59.2", 60n],
    [6, "1", 6n],
    [6, "6", 6n],
    [6, "6.000001", 12n],
    [6, "61", 66n],
    [60, "1", 60n],
    [60, "60", 60n],
    [60, "61", 120n],
    [60, "3599", 3600n],
  ] as const)("increment %i s: %s s is billed as %i s", (increment, quantity, seconds) => {
    const p = priceEvent(rate(perSecond({ increment })), { quantity });
    expect(p.cost).toBe(seconds * C);
    const line = p.breakdown[0]!;
    expect(line.kind === "usage" && line.billed_quantity).toBe(seconds * QTY_SCALE);
  });

  it("without an increment, bills the exact quantity (to the micro-unit)", () => {
    expect(cost(perSecond({}), { quantity: "90.5" })).toBe(90_500_000n);
    expect(cost(perSecond({}), { quantity: "0.000001" })).toBe(1n);
  });

  it.each([
    [30, 6, "1", 30n],
    [30, 6, "29", 30n],
    [30, 6, "30", 30n],
    [30, 6, "31", 36n],
    // A minimum that is not a whole number of increments: rounding first, then the minimum.
    [10, 6, "1", 10n],
    [10, 6, "11", 12n],
  ] as const)(
    "minimum %i s, increment %i s: %s s is billed as %i s",
    (minimum, increment, quantity, seconds) => {
      expect(cost(perSecond({ minimum, increment }), { quantity })).toBe(seconds * C);
    },
  );

  it("does not bill the minimum of an unused dimension (quantity 0)", () => {
    expect(cost(perSecond({ minimum: 30, increment: 6 }), { quantity: 0 })).toBe(0n);
    expect(cost(perSecond({ minimum: 30, fee: 2 }), { quantity: "0" })).toBe(2n * C);
  });

  it("applies per-dimension increments and minimums of a multi-dimension service", () => {
    const r: ServiceRateJSON = {
      unit: "token",
      increment: 1000, // default for every dimension
      dimensions: {
        input_tokens: { price: 1, per: 1000 },
        output_tokens: { price: 1, per: 1000, increment: 1, minimum: 100 },
      },
    };
    expect(cost(r, { quantities: { input_tokens: 1, output_tokens: 1 } })).toBe(1n * C + 100_000n);
    expect(cost(r, { quantities: { input_tokens: 1001, output_tokens: 150 } })).toBe(2n * C + 150_000n);
  });
});

describe("fee and modifiers", () => {
  const base: ServiceRateJSON = { unit: "second", price: 60, per: 60, increment: 1 };

  it("adds the per-event fee once, whatever the quantity", () => {
    expect(cost({ ...base, fee: 5 }, { quantity: 61 })).toBe(66n * C);
    expect(cost({ ...base, fee: 5 }, { quantity: 1 })).toBe(6n * C);
    expect(cost({ ...base, fee: "0.25" }, { quantity: 0 })).toBe(250_000n);
  });

  it("multiplies when the metadata value matches, and only then", () => {
    const r = { ...base, modifiers: [{ key: "quality", value: "premium", multiply: 2 }] };
    expect(cost(r, { quantity: 10, metadata: { quality: "premium" } })).toBe(20n * C);
    for (const metadata of [
      undefined,
      null,
      {},
      { quality: "standard" },
      { quality: "Premium" },
      { quality: ["premium"] },
    ])
      expect(cost(r, { quantity: 10, metadata })).toBe(10n * C);
    // Inherited properties are not metadata.
    expect(
      cost(
        { ...base, modifiers: [{ key: "toString", value: "x", multiply: 2 }] },
        { quantity: 10, metadata: {} },
      ),
    ).toBe(10n * C);
  });

  it("matches booleans and numbers by their text", () => {
    const r = {
      ...base,
      modifiers: [
        { key: "speaker_diarization", value: true, add_per_unit: { price: 30, per: 60 } },
        { key: "channels", value: 2, multiply: 2 },
      ],
    };
    expect(cost(r, { quantity: 60, metadata: { speaker_diarization: true } })).toBe(90n * C);
    expect(cost(r, { quantity: 60, metadata: { speaker_diarization: "true" } })).toBe(90n * C);
    expect(cost(r, { quantity: 60, metadata: { speaker_diarization: false } })).toBe(60n * C);
    expect(cost(r, { quantity: 60, metadata: { channels: 2 } })).toBe(120n * C);
    expect(cost(r, { quantity: 60, metadata: { channels: "2" } })).toBe(120n * C);
    expect(cost(r, { quantity: 60, metadata: { channels: 1 } })).toBe(60n * C);
  });

  it("adds a per-unit price on the billed quantity (after the increment), with its own per", () => {
    const r = {
      ...base,
      increment: 6,
      modifiers: [{ key: "diarize", value: true, add_per_unit: { price: 1, per: 1 } }],
    };
    // 7 s → 12 s billed: 12 × (1 + 1) = 24.
    expect(cost(r, { quantity: 7, metadata: { diarize: true } })).toBe(24n * C);
    // `per` defaults to the dimension's: 30 credits per 60 s.
    const d = { ...base, modifiers: [{ key: "diarize", value: true, add_per_unit: { price: 30 } }] };
    expect(cost(d, { quantity: 60, metadata: { diarize: true } })).toBe(90n * C);
  });

  it("adds a flat amount once per event, whatever the quantity", () => {
    const r = { ...base, modifiers: [{ key: "rush", value: true, add_flat: 10 }] };
    expect(cost(r, { quantity: 1, metadata: { rush: true } })).toBe(11n * C);
    expect(cost(r, { quantity: 100, metadata: { rush: true } })).toBe(110n * C);
    expect(cost(r, { quantity: 0, metadata: { rush: true } })).toBe(10n * C);
  });

  it("applies in the documented order: per-unit additions, then multipliers, then flat amounts and the fee", () => {
    const r: ServiceRateJSON = {
      ...base,
      fee: 5,
      modifiers: [
        { key: "quality", value: "premium", multiply: 2 },
        { key: "rush", value: true, add_flat: 10 },
        { key: "diarize", value: true, add_per_unit: { price: 30, per: 60 } },
      ],
    };
    const metadata = { quality: "premium", rush: true, diarize: true };
    // (60 + 30) × 2 + 10 + 5 = 195. If the multiplier missed the addition: 60 × 2 + 30 + 15 = 165;
    // if it also scaled the flat amount and the fee: 180 + 30 = 210.
    const p = priceEvent(rate(r), { quantity: 60, metadata });
    expect(p.cost).toBe(195n * C);
    // The order of the modifiers in the card does not matter.
    expect(cost({ ...r, modifiers: [...r.modifiers!].reverse() }, { quantity: 60, metadata })).toBe(195n * C);
    expect(pricedToJSON(p)).toEqual({
      cost: "195",
      breakdown: [
        {
          kind: "usage",
          dimension: "quantity",
          unit: "second",
          quantity: "60",
          billed_quantity: "60",
          price: "60",
          per: "60",
          modifiers: [
            { key: "quality", value: "premium", effect: "multiply", factor: "2" },
            { key: "diarize", value: true, effect: "add_per_unit", price: "30", per: "60" },
          ],
          multiplier: "2",
          amount: "180",
        },
        {
          kind: "modifier",
          modifier: { key: "rush", value: true, effect: "add_flat", amount: "10" },
          amount: "10",
        },
        { kind: "fee", amount: "5" },
      ],
    });
  });

  it("stacks multipliers (their product) and scopes one to a dimension", () => {
    const r: ServiceRateJSON = {
      unit: "token",
      dimensions: { input: { price: 1 }, output: { price: 1 } },
      modifiers: [
        { key: "quality", value: "premium", multiply: 2 },
        { key: "priority", value: "high", multiply: "1.5" },
        { key: "cached", value: true, multiply: "0.1", dimension: "input" },
      ],
    };
    const q = { input: 10, output: 10 };
    expect(cost(r, { quantities: q })).toBe(20n * C);
    expect(cost(r, { quantities: q, metadata: { quality: "premium", priority: "high" } })).toBe(60n * C);
    expect(cost(r, { quantities: q, metadata: { cached: true } })).toBe(11n * C);
  });
});

describe("multi-dimension services and rounding once per event", () => {
  // Each dimension: 1 micro-credit per 3 units, so 1 unit costs a third of a micro-credit.
  const thirds: ServiceRateJSON = {
    unit: "token",
    dimensions: {
      a: { price: "0.000001", per: 3 },
      b: { price: "0.000001", per: 3 },
      c: { price: "0.000001", per: 3 },
    },
  };

  it("rounds the event's exact total up once, not each dimension", () => {
    const p = priceEvent(rate(thirds), { quantities: { a: 1, b: 1, c: 1 } });
    // 1/3 + 1/3 + 1/3 = 1 micro-credit; rounding per dimension would charge 3.
    expect(p.exact).toEqual({ num: 1n, den: 1n });
    expect(p.cost).toBe(1n);
    const amounts = p.breakdown.flatMap((l) => (l.kind === "usage" ? [l.amount] : []));
    expect(amounts).toEqual([1n, 1n, 1n].map((num) => ({ num, den: 3n })));
    // 1/3 + 1/3 + 2/3 = 4/3 → 2 (per dimension: 3).
    expect(cost(thirds, { quantities: { a: 1, b: 1, c: 2 } })).toBe(2n);
    // A single third is still charged: up, never down.
    expect(cost(thirds, { quantities: { a: 1 } })).toBe(1n);
    // Flat amounts join the same single rounding: 1/3 + fee 1 µ → 2 (not 1/3 → 1, + 1).
    expect(cost({ ...thirds, fee: "0.000001" }, { quantities: { a: 1, b: 1 } })).toBe(2n);
  });

  it("treats a missing dimension as 0 and lists every dimension in the breakdown", () => {
    const p = priceUsage(DEFAULT_RATE_CARD, { service: "llm_chat", quantities: { output_tokens: "1000" } });
    expect(p.cost).toBe(1_500_000n);
    expect(
      p.breakdown.map((l) => (l.kind === "usage" ? [l.dimension, l.billed_quantity] : [l.kind])),
    ).toEqual([["input_tokens", 0n], ["output_tokens", 1000n * QTY_SCALE], ["fee"]]);
  });

  it("property: cost is the exact total rounded up, with exact ≤ cost < exact + 1", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            price: fc.bigInt({ min: 0n, max: 10n ** 9n }),
            per: fc.bigInt({ min: 1000n, max: 10n ** 9n }),
            increment: fc.bigInt({ min: 1n, max: 10n ** 8n }),
            q: fc.bigInt({ min: 0n, max: 10n ** 10n }),
          }),
          { minLength: 1, maxLength: 5 },
        ),
        fc.bigInt({ min: 0n, max: 10n ** 9n }),
        (dims, fee) => {
          const json: ServiceRateJSON = {
            unit: "unit",
            fee: formatQuantity(fee),
            dimensions: Object.fromEntries(
              dims.map((d, i) => [
                `d${i}`,
                {
                  price: formatQuantity(d.price),
                  per: formatQuantity(d.per),
                  increment: formatQuantity(d.increment),
                },
              ]),
            ),
          };
          const quantities = Object.fromEntries(dims.map((d, i) => [`d${i}`, formatQuantity(d.q)]));
          const p = priceEvent(rate(json), { quantities });
          // Independent reference: one common denominator, the product of the pers.
          let num = fee;
          let den = 1n;
          for (const d of dims) {
            const billed = d.q === 0n ? 0n : ((d.q + d.increment - 1n) / d.increment) * d.increment;
            num = num * d.per + billed * d.price * den;
            den *= d.per;
          }
          expect(p.exact.num * den).toBe(num * p.exact.den);
          expect(p.cost * den >= num).toBe(true);
          expect((p.cost - 1n) * den < num).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("property: the cost never decreases as the quantity grows", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        fc.bigInt({ min: 1n, max: 10n ** 8n }),
        fc.bigInt({ min: 0n, max: 10n ** 8n }),
        fc.bigInt({ min: 0n, max: 10n ** 10n }),
        fc.bigInt({ min: 0n, max: 10n ** 10n }),
        (per, increment, minimum, q1, q2) => {
          const r = rate({
            unit: "second",
            price: 7,
            per: formatQuantity(per),
            increment: formatQuantity(increment),
            minimum: formatQuantity(minimum),
            modifiers: [{ key: "x", value: 1, multiply: "1.5" }],
          });
          const [lo, hi] = q1 <= q2 ? [q1, q2] : [q2, q1];
          const a = priceEvent(r, { quantity: formatQuantity(lo), metadata: { x: 1 } });
          const b = priceEvent(r, { quantity: formatQuantity(hi), metadata: { x: 1 } });
          expect(a.cost <= b.cost).toBe(true);
          const line = b.breakdown[0]!;
          if (line.kind === "usage" && hi > 0n) {
            expect(line.billed_quantity >= hi).toBe(true);
            expect(line.billed_quantity % increment === 0n || line.billed_quantity === minimum).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("rate card versions", () => {
  const v1 = card(1, T0, { transcription: { unit: "second", price: 660, per: 60 } });
  const v2 = card(2, T0 + 1000, { transcription: { unit: "second", price: 990, per: 60 } });
  const v3 = card(3, T0 + 2000, { tts: { unit: "character", price: 1, per: 1 } });
  const versions = [v3, v1, v2]; // any order

  it.each([
    [T0, 1],
    [T0 + 1, 1],
    [T0 + 999, 1],
    [T0 + 1000, 2],
    [T0 + 1999, 2],
    [T0 + 2000, 3],
    [T0 + 10 ** 12, 3],
  ])("at %i the version in force is %i (effective_at inclusive)", (at, version) => {
    expect(rateCardAt(versions, at).version).toBe(version);
  });

  it("refuses an instant before the first version, naming the field", () => {
    expectError(() => rateCardAt(versions, T0 - 1), "validation_error", "occurred_at");
    expectError(() => rateCardAt([], T0), "validation_error", "occurred_at");
    expectError(() => rateCardAt(versions, Number.NaN, "at"), "validation_error", "at");
  });

  it("on the same effective_at, the higher version wins (a correction)", () => {
    const v2b = card(4, T0 + 1000, { transcription: { unit: "second", price: 1, per: 60 } });
    expect(rateCardAt([v1, v2b, v2, v3], T0 + 1000).version).toBe(4);
    expect(rateCardAt([v1, v2, v2b, v3], T0 + 1000).version).toBe(4);
    expect(rateCardAt([v2b, v2], T0 + 1999).version).toBe(4);
  });

  it("old usage keeps its price; a service dropped later is unknown after", () => {
    const price = (at: number) =>
      priceUsage(rateCardAt(versions, at), { service: "transcription", quantity: 60 }).cost;
    expect(price(T0 + 999)).toBe(660n * C);
    expect(price(T0 + 1000)).toBe(990n * C);
    expect(
      priceUsage(rateCardAt(versions, T0 + 500), { service: "transcription", quantity: 60 }).version,
    ).toBe(1);
    const err = expectError(() => price(T0 + 2000), "not_found", "service");
    expect(err).toBeInstanceOf(UnknownServiceError);
    expect(err.details).toMatchObject({ service: "transcription", version: 3 });
  });

  it("checks that a new version comes after the existing ones", () => {
    expect(() => checkNextVersion([v1, v2], v3)).not.toThrow();
    expect(() => checkNextVersion([v1, v2], card(3, T0 + 1000, { a: { unit: "x", fee: 1 } }))).not.toThrow();
    expectError(
      () => checkNextVersion([v1, v2], card(2, T0 + 5000, { a: { unit: "x", fee: 1 } })),
      "validation_error",
      "version",
    );
    expectError(
      () => checkNextVersion([v1, v2], card(3, T0 + 999, { a: { unit: "x", fee: 1 } })),
      "validation_error",
      "effective_at",
    );
  });
});

describe("bad events", () => {
  const llm = { service: "llm_chat" };
  const tr = { service: "transcription" };
  type Case = [name: string, usage: Record<string, unknown>, code: ErrorCode, field: string];
  const BAD_QUANTITIES: [string, unknown][] = [
    ["negative number", -1],
    ["negative string", "-1"],
    ["negative zero string", "-0"],
    ["tiny negative", -0.000001],
    ["text", "abc"],
    ["empty", ""],
    ["blank", "  "],
    ["exponent string", "1e3"],
    ["hex", "0x10"],
    ["leading dot", ".5"],
    ["trailing dot", "5."],
    ["plus sign", "+5"],
    ["thousands separator", "1,000"],
    ["7 decimals", "1.1234567"],
    ["float noise", 0.1 + 0.2],
    ["tiny positive", 1e-7],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["string Infinity", "Infinity"],
    ["over the maximum", 1e12 + 1],
    ["over the maximum (string)", "1000000000000.000001"],
    ["past 2^53", 2 ** 60],
    ["overlong digits", "1".repeat(400)],
    ["boolean", true],
    ["object", {}],
    ["array", [1]],
  ];
  const cases: Case[] = [
    ...BAD_QUANTITIES.map(([n, q]): Case => [
      `quantity: ${n}`,
      { ...tr, quantity: q },
      "validation_error",
      "quantity",
    ]),
    ...BAD_QUANTITIES.map(([n, q]): Case => [
      `quantities.input_tokens: ${n}`,
      { ...llm, quantities: { input_tokens: q } },
      "validation_error",
      "quantities.input_tokens",
    ]),
    [
      "a null dimension",
      { ...llm, quantities: { output_tokens: null } },
      "validation_error",
      "quantities.output_tokens",
    ],
    [
      "an unknown dimension",
      { ...llm, quantities: { input_token: 5 } },
      "validation_error",
      "quantities.input_token",
    ],
    ["no dimension", { ...llm, quantities: {} }, "validation_error", "quantities"],
    ["quantities as an array", { ...llm, quantities: [1, 2] }, "validation_error", "quantities"],
    ["quantities as a string", { ...llm, quantities: "12" }, "validation_error", "quantities"],
    ["multi-dimension given quantity", { ...llm, quantity: 12 }, "validation_error", "quantity"],
    ["multi-dimension given nothing", { ...llm }, "validation_error", "quantities"],
    [
      "single dimension given quantities",
      { ...tr, quantities: { quantity: 1 } },
      "validation_error",
      "quantities",
    ],
    ["single dimension given nothing", { ...tr }, "validation_error", "quantity"],
    [
      "fixed price given a quantity",
      { service: "voice_cloning_training", quantity: 1 },
      "validation_error",
      "quantity",
    ],
    [
      "fixed price given quantities",
      { service: "voice_cloning_training", quantities: {} },
      "validation_error",
      "quantities",
    ],
    ["metadata as a string", { ...tr, quantity: 1, metadata: "x" }, "validation_error", "metadata"],
    ["metadata as an array", { ...tr, quantity: 1, metadata: ["x"] }, "validation_error", "metadata"],
    ["unknown service", { service: "teleportation", quantity: 1 }, "not_found", "service"],
    ["inherited name as service", { service: "constructor", quantity: 1 }, "not_found", "service"],
    ["empty service", { service: "", quantity: 1 }, "validation_error", "service"],
    ["numeric service", { service: 42, quantity: 1 }, "validation_error", "service"],
    ["over-long service", { service: "s".repeat(65), quantity: 1 }, "validation_error", "service"],
  ];
  it.each(cases)("%s → %s on %s", (_name, usage, code, field) => {
    expectError(() => priceUsage(DEFAULT_RATE_CARD, usage as { service: unknown }), code, field);
  });

  it("says what to give instead", () => {
    expect(
      expectError(
        () => priceUsage(DEFAULT_RATE_CARD, { ...llm, quantity: 1 }),
        "validation_error",
        "quantity",
      ).message,
    ).toMatch(/input_tokens, output_tokens.*give quantities/);
    expect(
      expectError(
        () => priceUsage(DEFAULT_RATE_CARD, { ...tr, quantities: { a: 1 } }),
        "validation_error",
        "quantities",
      ).message,
    ).toMatch(/give quantity \(second\)/);
    expect(
      expectError(
        () => priceUsage(DEFAULT_RATE_CARD, { ...tr, quantity: "1.1234567" }),
        "validation_error",
        "quantity",
      ).message,
    ).toMatch(/6 decimals/);
  });

  it("refuses an event priced above the largest amount, and accepts the edges", () => {
    const dear = rate({ unit: "second", price: 1_000_000_000, per: "0.000001" });
    expectError(() => priceEvent(dear, { quantity: 1 }), "validation_error", "quantity");
    const r = rate({ unit: "token", dimensions: { a: { price: 1_000_000_000 } } });
    expect(priceEvent(r, { quantities: { a: 1000 } }).cost).toBe(MAX_AMOUNT);
    expectError(() => priceEvent(r, { quantities: { a: "1000.000001" } }), "validation_error", "quantities");
    expect(priceUsage(DEFAULT_RATE_CARD, { ...tr, quantity: " 12.5 " }).cost).toBe(143n * C);
    expect(priceUsage(DEFAULT_RATE_CARD, { ...tr, quantity: 12n }).cost).toBe(132n * C);
    expect(priceUsage(DEFAULT_RATE_CARD, { ...tr, quantity: "007.000000" }).cost).toBe(77n * C);
    expect(priceUsage(DEFAULT_RATE_CARD, { service: "video_download", quantity: 1e11 }).cost).toBe(
      6n * 10n ** 11n * C,
    );
    expect(priceUsage(DEFAULT_RATE_CARD, { service: "voice_cloning_training", quantity: null }).cost).toBe(
      3300n * C,
    );
  });

  it("property: a quantity reads back exactly from its decimal form", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX_QUANTITY }), (q) => {
        expect(parseQuantity(formatQuantity(q), "quantity")).toBe(q);
      }),
      { numRuns: 300 },
    );
  });
});

describe("validating an operator's rate card", () => {
  const good = (): RateCardJSON =>
    ({
      version: 2,
      effective_at: T0,
      services: {
        s: {
          unit: "second",
          price: 660,
          per: 60,
          increment: 1,
          modifiers: [{ key: "quality", value: "premium", multiply: 2 }],
        },
        m: {
          unit: "token",
          dimensions: { a: { price: 1, per: 1000 }, b: { price: 2, per: 1000 } },
        },
        f: { unit: "request", fee: 10 },
        "gpt-4.1": { unit: "token", price: 1 },
      },
    }) as RateCardJSON;
  // Mutations of a valid card (as loose JSON) and the path they must be refused at.
  type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const cases: [string, (c: Json) => unknown, string][] = [
    ["an unknown top-level field", (c) => (c.extra = 1), "extra"],
    ["version 0", (c) => (c.version = 0), "version"],
    ["a fractional version", (c) => (c.version = 1.5), "version"],
    ["a version as text", (c) => (c.version = "2"), "version"],
    ["effective_at before 2000", (c) => (c.effective_at = 1000), "effective_at"],
    ["effective_at as text", (c) => (c.effective_at = "2030-01-01"), "effective_at"],
    ["no services", (c) => (c.services = {}), "services"],
    ["services as an array", (c) => (c.services = []), "services"],
    [
      "too many services",
      (c) => {
        for (let i = 0; i <= PRICING_LIMITS.MAX_SERVICES; i++) c.services[`x${i}`] = { unit: "x", fee: 1 };
      },
      "services",
    ],
    [
      "a service name with a space",
      (c) => (c.services["bad name"] = { unit: "x", fee: 1 }),
      'services["bad name"]',
    ],
    [
      "a 65-character service name",
      (c) => (c.services["a".repeat(65)] = { unit: "x", fee: 1 }),
      `services["${"a".repeat(64)}…"]`,
    ],
    ["a service that is not an object", (c) => (c.services.s = 5), "services.s"],
    ["an unknown service field", (c) => (c.services.s.incremnt = 6), "services.s.incremnt"],
    ["a missing unit", (c) => delete c.services.s.unit, "services.s.unit"],
    ["a unit with a space", (c) => (c.services.s.unit = "per second"), "services.s.unit"],
    ["a 33-character unit", (c) => (c.services.s.unit = "u".repeat(33)), "services.s.unit"],
    ["a negative price", (c) => (c.services.s.price = -1), "services.s.price"],
    ["a price as words", (c) => (c.services.s.price = "ten"), "services.s.price"],
    ["a price over a billion credits", (c) => (c.services.s.price = 1_000_000_001), "services.s.price"],
    ["a price with 7 decimals", (c) => (c.services.s.price = "0.0000001"), "services.s.price"],
    ["a non-finite price", (c) => (c.services.s.price = Number.POSITIVE_INFINITY), "services.s.price"],
    ["per 0", (c) => (c.services.s.per = 0), "services.s.per"],
    ["a negative per", (c) => (c.services.s.per = -60), "services.s.per"],
    ["increment 0", (c) => (c.services.s.increment = 0), "services.s.increment"],
    [
      "an increment over the maximum",
      (c) => (c.services.s.increment = "1000000000001"),
      "services.s.increment",
    ],
    ["a negative minimum", (c) => (c.services.s.minimum = -1), "services.s.minimum"],
    ["a negative fee", (c) => (c.services.s.fee = -1), "services.s.fee"],
    ["price and dimensions", (c) => (c.services.s.dimensions = { a: { price: 1 } }), "services.s.dimensions"],
    ["neither price, dimensions nor fee", (c) => delete c.services.s.price, "services.s.price"],
    ["a fixed price with per", (c) => (c.services.f.per = 60), "services.f.per"],
    ["a fixed price with an increment", (c) => (c.services.f.increment = 1), "services.f.increment"],
    ["a multi-dimension service with per", (c) => (c.services.m.per = 1000), "services.m.per"],
    ["no dimensions", (c) => (c.services.m.dimensions = {}), "services.m.dimensions"],
    [
      "17 dimensions",
      (c) => {
        for (let i = 0; i < 17; i++) c.services.m.dimensions[`d${i}`] = { price: 1 };
      },
      "services.m.dimensions",
    ],
    [
      "a dimension name not an identifier",
      (c) => (c.services.m.dimensions["1x"] = { price: 1 }),
      'services.m.dimensions["1x"]',
    ],
    [
      "a dimension without a price",
      (c) => delete c.services.m.dimensions.a.price,
      "services.m.dimensions.a.price",
    ],
    ["a dimension with per 0", (c) => (c.services.m.dimensions.a.per = 0), "services.m.dimensions.a.per"],
    [
      "an unknown dimension field",
      (c) => (c.services.m.dimensions.a.cost = 1),
      "services.m.dimensions.a.cost",
    ],
    [
      "a bad path-quoted service price",
      (c) => (c.services["gpt-4.1"].price = -1),
      'services["gpt-4.1"].price',
    ],
    ["modifiers not an array", (c) => (c.services.s.modifiers = {}), "services.s.modifiers"],
    [
      "65 modifiers",
      (c) =>
        (c.services.s.modifiers = Array.from({ length: 65 }, () => ({ key: "k", value: "v", multiply: 2 }))),
      "services.s.modifiers",
    ],
    [
      "a modifier that is not an object",
      (c) => (c.services.s.modifiers[0] = "x2"),
      "services.s.modifiers[0]",
    ],
    [
      "a modifier with no effect",
      (c) => delete c.services.s.modifiers[0].multiply,
      "services.s.modifiers[0]",
    ],
    [
      "a modifier with two effects",
      (c) => (c.services.s.modifiers[0].add_flat = 1),
      "services.s.modifiers[0]",
    ],
    [
      "an unknown modifier field",
      (c) => (c.services.s.modifiers[0].when = 1),
      "services.s.modifiers[0].when",
    ],
    ["an empty modifier key", (c) => (c.services.s.modifiers[0].key = ""), "services.s.modifiers[0].key"],
    [
      "a modifier value that is an object",
      (c) => (c.services.s.modifiers[0].value = {}),
      "services.s.modifiers[0].value",
    ],
    [
      "a modifier value that is NaN",
      (c) => (c.services.s.modifiers[0].value = NaN),
      "services.s.modifiers[0].value",
    ],
    [
      "a missing modifier value",
      (c) => delete c.services.s.modifiers[0].value,
      "services.s.modifiers[0].value",
    ],
    [
      "a negative multiplier",
      (c) => (c.services.s.modifiers[0].multiply = -2),
      "services.s.modifiers[0].multiply",
    ],
    [
      "a multiplier over 1000",
      (c) => (c.services.s.modifiers[0].multiply = 1001),
      "services.s.modifiers[0].multiply",
    ],
    [
      "an unknown modifier dimension",
      (c) => (c.services.s.modifiers[0].dimension = "x"),
      "services.s.modifiers[0].dimension",
    ],
    [
      "add_per_unit without a dimension on a multi-dimension service",
      (c) => (c.services.m.modifiers = [{ key: "k", value: 1, add_per_unit: { price: 1 } }]),
      "services.m.modifiers[0].dimension",
    ],
    [
      "add_per_unit without a price",
      (c) => (c.services.s.modifiers = [{ key: "k", value: 1, add_per_unit: { per: 1 } }]),
      "services.s.modifiers[0].add_per_unit.price",
    ],
    [
      "add_per_unit with per 0",
      (c) => (c.services.s.modifiers = [{ key: "k", value: 1, add_per_unit: { price: 1, per: 0 } }]),
      "services.s.modifiers[0].add_per_unit.per",
    ],
    [
      "add_flat with a dimension",
      (c) => (c.services.m.modifiers = [{ key: "k", value: 1, add_flat: 1, dimension: "a" }]),
      "services.m.modifiers[0].dimension",
    ],
    [
      "a negative add_flat",
      (c) => (c.services.s.modifiers = [{ key: "k", value: 1, add_flat: -1 }]),
      "services.s.modifiers[0].add_flat",
    ],
    [
      "a multiplier on a fixed price",
      (c) => (c.services.f.modifiers = [{ key: "k", value: 1, multiply: 2 }]),
      "services.f.modifiers[0].multiply",
    ],
    [
      "a multiplier_key on add_flat",
      (c) => (c.services.s.modifiers = [{ key: "k", value: 1, add_flat: 1, multiplier_key: "s_k" }]),
      "services.s.modifiers[0].multiplier_key",
    ],
    [
      "a multiplier_key that is a service's name",
      (c) => (c.services.s.modifiers[0].multiplier_key = "m"),
      "services.s.modifiers[0].multiplier_key",
    ],
    [
      "a description too long",
      (c) => (c.services.s.description = "d".repeat(PRICING_LIMITS.MAX_DESCRIPTION_LENGTH + 1)),
      "services.s.description",
    ],
  ];

  it("accepts the valid card", () => {
    const c = parseRateCard(good());
    expect(Object.keys(c.services)).toEqual(["s", "m", "f", "gpt-4.1"]);
    expect(c.services.s!.input).toBe("quantity");
    expect(c.services.m!.input).toBe("quantities");
    expect(c.services.f!.input).toBe("none");
  });

  it.each(cases)("refuses %s at %s", (_name, mutate, field) => {
    const c = good() as Json;
    mutate(c);
    expectError(() => parseRateCard(c), "validation_error", field);
  });

  it.each([[], null, "card", 42])("refuses %j as a whole card at rate_card", (input) => {
    expectError(() => parseRateCard(input), "validation_error", "rate_card");
  });

  it("property: a parsed card reads back from its JSON form and prices the same", () => {
    const dec = (max: bigint, min = 0n) => fc.bigInt({ min, max }).map(formatQuantity);
    const dimension = fc.record({
      price: dec(10n ** 12n),
      per: dec(10n ** 9n, 10n ** 6n),
      increment: dec(10n ** 8n, 1n),
      minimum: dec(10n ** 8n),
    });
    const service = fc.oneof(
      fc.record({
        unit: fc.constant("second"),
        price: dec(10n ** 12n),
        per: dec(10n ** 9n, 10n ** 6n),
        fee: dec(10n ** 9n),
      }),
      fc.record({
        unit: fc.constant("token"),
        dimensions: fc.dictionary(fc.constantFrom("a", "b", "c"), dimension, { minKeys: 1 }),
      }),
      fc.record({ unit: fc.constant("request"), fee: dec(10n ** 9n) }),
    );
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom("x", "y", "z-1"), service, { minKeys: 1 }),
        fc.integer({ min: 1, max: 10 }),
        (services, version) => {
          const c = parseRateCard({ version, effective_at: T0, services });
          const back = parseRateCard(JSON.parse(JSON.stringify(rateCardToJSON(c))));
          expect(back).toEqual(c);
          for (const [name, s] of Object.entries(c.services)) {
            const usage =
              s.input === "quantity"
                ? { quantity: "12.5" }
                : s.input === "quantities"
                  ? { quantities: Object.fromEntries(s.dimensions.map((d) => [d.name, "3.25"])) }
                  : {};
            expect(priceUsage(back, { service: name, ...usage }).cost).toBe(
              priceUsage(c, { service: name, ...usage }).cost,
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
