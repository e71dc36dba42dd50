/** A parsed rate card back to JSON, and the Credits API's `multipliers` view of it. */
import { formatCredits } from "../amount.ts";
import { formatRatioCredits, formatScaled, ratio } from "./decimal.ts";
import type {
  DimensionJSON,
  Modifier,
  ModifierJSON,
  RateCard,
  RateCardJSON,
  ServiceRate,
  ServiceRateJSON,
} from "./types.ts";

/** The JSON form of a parsed rate card: amounts and quantities as exact decimal strings. parseRateCard reads it back. */
export function rateCardToJSON(card: RateCard): RateCardJSON {
  const services: Record<string, ServiceRateJSON> = {};
  for (const [n, s] of Object.entries(card.services)) services[n] = serviceToJSON(s);
  return { version: card.version, effective_at: card.effective_at, services };
}

function serviceToJSON(s: ServiceRate): ServiceRateJSON {
  const out: ServiceRateJSON = { unit: s.unit };
  if (s.description !== undefined) out.description = s.description;
  if (s.input === "quantity") {
    const d = s.dimensions[0]!;
    Object.assign(out, {
      price: formatCredits(d.price),
      per: formatScaled(d.per),
      increment: formatScaled(d.increment),
      minimum: formatScaled(d.minimum),
    });
  } else if (s.input === "quantities") {
    const dims: Record<string, DimensionJSON> = {};
    for (const d of s.dimensions)
      dims[d.name] = {
        unit: d.unit,
        price: formatCredits(d.price),
        per: formatScaled(d.per),
        increment: formatScaled(d.increment),
        minimum: formatScaled(d.minimum),
      };
    out.dimensions = dims;
  }
  out.fee = formatCredits(s.fee);
  if (s.modifiers.length) out.modifiers = s.modifiers.map((m) => modifierToJSON(m, s.input));
  return out;
}

function modifierToJSON(m: Modifier, input: ServiceRate["input"]): ModifierJSON {
  const out: ModifierJSON = { key: m.key, value: m.value };
  if (m.effect === "multiply") {
    out.multiply = formatScaled(m.factor);
    if (m.dimension !== null) out.dimension = m.dimension;
  } else if (m.effect === "add_per_unit") {
    out.add_per_unit = { price: formatCredits(m.price), per: formatScaled(m.per) };
    if (input === "quantities") out.dimension = m.dimension;
  } else {
    out.add_flat = formatCredits(m.amount);
  }
  if (m.multiplier_key !== undefined) out.multiplier_key = m.multiplier_key;
  if (m.description !== undefined) out.description = m.description;
  return out;
}

/**
 * The Credits API's `GET /api/v1/credits/multipliers` object: `{ service: credits }` where the number is
 * the credits of a single-dimension service per its `per` units (transcription: 660 per 60 s → 660;
 * text_to_speech: per 1,000 characters), or the fee of a fixed-price service; and, for each modifier with a
 * `multiplier_key`, that variant's credits per the same `per`. Multi-dimension services have no single
 * number and are left out; a single-dimension service's per-event fee is not included in its number.
 */
export function seedMultipliers(card: RateCard): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [n, s] of Object.entries(card.services)) {
    if (s.input === "none") out[n] = Number(formatCredits(s.fee));
    if (s.input !== "quantity") continue;
    const d = s.dimensions[0]!;
    out[n] = Number(formatCredits(d.price));
    for (const m of s.modifiers) {
      if (m.multiplier_key === undefined) continue;
      // Micro-credits per d.per with only this modifier applied.
      const r =
        m.effect === "multiply"
          ? ratio(d.price * m.factor, 1_000_000n)
          : m.effect === "add_per_unit"
            ? ratio(d.price * m.per + m.price * d.per, m.per)
            : ratio(d.price, 1n);
      out[m.multiplier_key] = Number(formatRatioCredits(r));
    }
  }
  return out;
}
