/**
 * Pricing one usage event against a service's rate. Pure and exact: bigint rationals only.
 *
 * The order, for each dimension d of the service:
 *   1. the quantity q given for d (validated: ≥ 0, ≤ 10^12 units, ≤ 6 decimals; a missing dimension is 0);
 *   2. the billed quantity b = 0 when q = 0 (an unused dimension is not billed, not even its minimum),
 *      else max(⌈q / increment⌉ × increment, minimum): round up to whole increments, then the minimum;
 *   3. the unit price = price / per, plus price / per of every matching `add_per_unit` modifier on d;
 *   4. amount_d = b × unit price × the product of every matching `multiply` modifier on d (or on every
 *      dimension): a multiplier scales the per-unit additions too;
 * then, once for the event:
 *   5. total = Σ amount_d + every matching `add_flat` amount + the service fee (flat amounts and the fee
 *      are never multiplied);
 *   6. cost = ⌈total⌉ micro-credits: the only rounding, once per event (never per dimension).
 * A modifier matches when `metadata[key]`, a string, number or boolean, has the same text as its value
 * (`true` matches "true", 2 matches "2"; case-sensitive). Sums and products commute, so the order of the
 * modifiers in the card does not change the cost; it only orders the breakdown.
 */
import { MAX_AMOUNT, formatCredits } from "../amount.ts";
import { TallyError } from "../errors.ts";
import { ceilDiv, formatRatioCredits, formatScaled, parseQuantity, ratio, type Ratio } from "./decimal.ts";
import type {
  BreakdownLine,
  DimensionRate,
  Modifier,
  PricedEvent,
  PricedUsage,
  RateCard,
  ServiceRate,
  UsageQuantities,
  UsageToPrice,
} from "./types.ts";
import { PRICING_LIMITS } from "./types.ts";

const FACTOR_SCALE = 1_000_000n;
const ONE: Ratio = Object.freeze({ num: 1n, den: 1n });
const ZERO: Ratio = Object.freeze({ num: 0n, den: 1n });

/** The usage event names a service the rate card in force does not price. */
export class UnknownServiceError extends TallyError {
  constructor(service: string, version: number) {
    super("not_found", `service ${service} is not on the rate card (version ${version})`, {
      field: "service",
      service,
      version,
    });
    this.name = "UnknownServiceError";
  }
}

/**
 * The rate card version in force at `at` (epoch ms): the one with the latest `effective_at` ≤ at (the
 * higher version on a tie). Old usage is priced by the version in force when it occurred.
 * Throws a validation error naming `field` when no version is in force yet.
 */
export function rateCardAt(versions: readonly RateCard[], at: number, field = "occurred_at"): RateCard {
  let best: RateCard | undefined;
  for (const v of versions) {
    if (!(v.effective_at <= at)) continue;
    if (
      !best ||
      v.effective_at > best.effective_at ||
      (v.effective_at === best.effective_at && v.version > best.version)
    )
      best = v;
  }
  if (!best) throw TallyError.validation(field, "is before the first rate card took effect");
  return best;
}

/** The rate of `service` on `card`; UnknownServiceError (not_found, field `service`) when it has none. */
export function serviceRate(card: RateCard, service: unknown): ServiceRate {
  if (typeof service !== "string" || service.length === 0)
    throw TallyError.validation("service", "must be a non-empty string");
  if (service.length > PRICING_LIMITS.MAX_SERVICE_NAME_LENGTH)
    throw TallyError.validation(
      "service",
      `must be at most ${PRICING_LIMITS.MAX_SERVICE_NAME_LENGTH} characters`,
    );
  if (!Object.hasOwn(card.services, service)) throw new UnknownServiceError(service, card.version);
  return card.services[service]!;
}

/**
 * Prices a usage event (or a hypothetical one) for a service on a rate card: the cost in micro-credits,
 * rounded up once, and its breakdown. Records nothing.
 */
export function priceUsage(card: RateCard, usage: UsageToPrice): PricedUsage {
  const rate = serviceRate(card, usage.service);
  return { service: usage.service as string, version: card.version, ...priceEvent(rate, usage) };
}

/** An estimate is the same call as pricing a real event: nothing is recorded either way. */
export const estimate = priceUsage;

/** Prices one event against one service's rate. See the order of application at the top of this file. */
export function priceEvent(rate: ServiceRate, usage: UsageQuantities): PricedEvent {
  const quantities = readQuantities(rate, usage);
  const metadata = readMetadata(usage.metadata);
  const matched = metadata ? rate.modifiers.filter((m) => matches(m, metadata)) : [];

  const breakdown: BreakdownLine[] = [];
  let totNum = 0n;
  let totDen = 1n;
  for (let i = 0; i < rate.dimensions.length; i++) {
    const d = rate.dimensions[i]!;
    const quantity = quantities[i]!;
    const billed = billedQuantity(d, quantity);
    let unitNum = d.price;
    let unitDen = d.per;
    let mulNum = 1n;
    let mulDen = 1n;
    const applied: Modifier[] = [];
    for (const m of matched) {
      if (m.effect === "add_per_unit" && m.dimension === d.name) {
        unitNum = unitNum * m.per + m.price * unitDen;
        unitDen = unitDen * m.per;
        applied.push(m);
      } else if (m.effect === "multiply" && (m.dimension === null || m.dimension === d.name)) {
        mulNum *= m.factor;
        mulDen *= FACTOR_SCALE;
        applied.push(m);
      }
    }
    const amount = billed === 0n ? ZERO : ratio(billed * unitNum * mulNum, unitDen * mulDen);
    if (totDen === amount.den) totNum += amount.num;
    else {
      totNum = totNum * amount.den + amount.num * totDen;
      totDen *= amount.den;
    }
    breakdown.push({
      kind: "usage",
      dimension: d.name,
      unit: d.unit,
      quantity,
      billed_quantity: billed,
      price: d.price,
      per: d.per,
      modifiers: applied,
      multiplier: mulDen === 1n ? ONE : ratio(mulNum, mulDen),
      amount,
    });
  }
  let fixed = 0n;
  for (const m of matched) {
    if (m.effect !== "add_flat") continue;
    fixed += m.amount;
    breakdown.push({ kind: "modifier", modifier: m, amount: m.amount });
  }
  fixed += rate.fee;
  breakdown.push({ kind: "fee", amount: rate.fee });
  totNum += fixed * totDen;

  const cost = ceilDiv(totNum, totDen);
  if (cost > MAX_AMOUNT)
    throw TallyError.validation(
      rate.input === "quantities" ? "quantities" : "quantity",
      `is priced above ${formatCredits(MAX_AMOUNT)} credits`,
    );
  // With one dimension the total is already in lowest terms (a reduced amount plus a whole number).
  return {
    cost,
    exact: rate.dimensions.length > 1 ? ratio(totNum, totDen) : { num: totNum, den: totDen },
    breakdown,
  };
}

/** Rounded up to whole increments, then at least the minimum; an unused dimension (0) bills nothing. */
export function billedQuantity(d: Pick<DimensionRate, "increment" | "minimum">, quantity: bigint): bigint {
  if (quantity === 0n) return 0n;
  const rounded = ceilDiv(quantity, d.increment) * d.increment;
  return rounded > d.minimum ? rounded : d.minimum;
}

function readQuantities(rate: ServiceRate, usage: UsageQuantities): bigint[] {
  const hasOne = usage.quantity != null;
  const hasMany = usage.quantities != null;
  switch (rate.input) {
    case "quantity": {
      const unit = rate.dimensions[0]!.unit;
      if (hasMany)
        throw TallyError.validation(
          "quantities",
          `is not accepted: this service has one dimension; give quantity (${unit})`,
        );
      if (!hasOne) throw TallyError.validation("quantity", `is required (a number of ${unit})`);
      return [parseQuantity(usage.quantity, "quantity")];
    }
    case "quantities": {
      if (hasOne)
        throw TallyError.validation(
          "quantity",
          `is not accepted: this service has dimensions (${dimensionNames(rate)}); give quantities`,
        );
      if (!hasMany)
        throw TallyError.validation("quantities", `is required: an object of ${dimensionNames(rate)}`);
      const given = usage.quantities;
      if (typeof given !== "object" || Array.isArray(given))
        throw TallyError.validation("quantities", `must be an object of ${dimensionNames(rate)}`);
      const out = rate.dimensions.map(() => 0n);
      let seen = 0;
      for (const [key, value] of Object.entries(given as Record<string, unknown>)) {
        const i = rate.dimensions.findIndex((d) => d.name === key);
        if (i < 0) {
          if (key.length > PRICING_LIMITS.MAX_NAME_LENGTH)
            throw TallyError.validation(
              "quantities",
              `has an unknown dimension (this service has ${dimensionNames(rate)})`,
            );
          throw TallyError.validation(
            `quantities.${key}`,
            `is not a dimension of this service (${dimensionNames(rate)})`,
          );
        }
        out[i] = parseQuantity(value, `quantities.${key}`);
        seen++;
      }
      if (seen === 0)
        throw TallyError.validation("quantities", `must give at least one of ${dimensionNames(rate)}`);
      return out;
    }
    case "none":
      if (hasOne || hasMany)
        throw TallyError.validation(
          hasOne ? "quantity" : "quantities",
          "is not accepted: this service has a fixed price per event",
        );
      return [];
  }
}

/** "input_tokens, output_tokens": for messages (a module function: no closure per priced event). */
function dimensionNames(rate: ServiceRate): string {
  return rate.dimensions.map((d) => d.name).join(", ");
}

function readMetadata(metadata: unknown): Record<string, unknown> | undefined {
  if (metadata == null) return undefined;
  if (typeof metadata !== "object" || Array.isArray(metadata))
    throw TallyError.validation("metadata", "must be an object");
  return metadata as Record<string, unknown>;
}

function matches(m: Modifier, metadata: Record<string, unknown>): boolean {
  if (!Object.hasOwn(metadata, m.key)) return false;
  const v = metadata[m.key];
  if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") return false;
  return String(v) === String(m.value);
}

/**
 * A priced event as JSON: credits and quantities as exact decimal strings; a dimension's amount (before
 * the event's single rounding) as credits with up to 12 decimals, rounded up at the last place.
 */
export function pricedToJSON(p: PricedEvent | PricedUsage): Record<string, unknown> {
  // Built field by field (no spreads, no callbacks): a batch answer holds one per event.
  const out: Record<string, unknown> = {};
  if ("service" in p) {
    out.service = p.service;
    out.version = p.version;
  }
  out.cost = formatCredits(p.cost);
  const lines = p.breakdown;
  const breakdown = new Array<Record<string, unknown>>(lines.length);
  for (let i = 0; i < lines.length; i++) breakdown[i] = lineToJSON(lines[i]!);
  out.breakdown = breakdown;
  return out;
}

function lineToJSON(line: BreakdownLine): Record<string, unknown> {
  switch (line.kind) {
    case "usage": {
      const modifiers = new Array<Record<string, unknown>>(line.modifiers.length);
      for (let i = 0; i < modifiers.length; i++) modifiers[i] = modifierSummary(line.modifiers[i]!);
      const m = line.multiplier;
      return {
        kind: line.kind,
        dimension: line.dimension,
        unit: line.unit,
        quantity: formatScaled(line.quantity),
        billed_quantity: formatScaled(line.billed_quantity),
        price: formatCredits(line.price),
        per: formatScaled(line.per),
        modifiers,
        multiplier: m === ONE ? "1" : formatRatioCredits({ num: m.num * 1_000_000n, den: m.den }),
        amount: formatRatioCredits(line.amount),
      };
    }
    case "modifier":
      return {
        kind: line.kind,
        modifier: modifierSummary(line.modifier),
        amount: formatCredits(line.amount),
      };
    case "fee":
      return { kind: line.kind, amount: formatCredits(line.amount) };
  }
}

function modifierSummary(m: Modifier): Record<string, unknown> {
  switch (m.effect) {
    case "multiply":
      return { key: m.key, value: m.value, effect: m.effect, factor: formatScaled(m.factor) };
    case "add_per_unit":
      return {
        key: m.key,
        value: m.value,
        effect: m.effect,
        price: formatCredits(m.price),
        per: formatScaled(m.per),
      };
    case "add_flat":
      return { key: m.key, value: m.value, effect: m.effect, amount: formatCredits(m.amount) };
  }
}
