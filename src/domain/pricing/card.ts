/**
 * Reading a rate card given by an operator (JSON) into its exact parsed form (back to JSON: ./to-json.ts).
 * Every error is a validation error whose field is the JSON path of the value at fault, e.g.
 * `services.transcription.modifiers[0].multiply` or `services["gpt-4.1"].dimensions.input_tokens.per`.
 * Unknown fields are refused (a misspelt `incremnt` must not silently bill without an increment).
 */
import { formatCredits, parseCredits } from "../amount.ts";
import { TallyError } from "../errors.ts";
import { QTY_SCALE, parseQuantity } from "./decimal.ts";
import {
  PRICING_LIMITS as L,
  SINGLE_DIMENSION,
  type DimensionRate,
  type Modifier,
  type ModifierValue,
  type RateCard,
  type ServiceRate,
} from "./types.ts";

/** Service names: what a usage event's `service` may be (and a multiplier_key). */
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
/** Dimension names appear in field paths (`quantities.input_tokens`): identifiers. */
const DIMENSION_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const UNIT_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Epoch ms from 2000-01-01 to 2200-01-01, as the ledger accepts for times. */
const MIN_TIME = 946_684_800_000;
const MAX_TIME = 7_258_118_400_000;

const CARD_FIELDS = ["version", "effective_at", "services"];
const SERVICE_FIELDS = [
  "unit",
  "description",
  "price",
  "per",
  "increment",
  "minimum",
  "dimensions",
  "fee",
  "modifiers",
];
const DIMENSION_FIELDS = ["unit", "price", "per", "increment", "minimum"];
const MODIFIER_FIELDS = [
  "key",
  "value",
  "multiply",
  "add_per_unit",
  "add_flat",
  "dimension",
  "multiplier_key",
  "description",
];

/** Validates a whole rate card (version, effective_at, services) and returns its exact form. */
export function parseRateCard(input: unknown): RateCard {
  const o = object(input, "", CARD_FIELDS, "rate_card");
  const version = o.version;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1 || version > L.MAX_VERSION)
    throw TallyError.validation("version", `must be an integer from 1 to ${L.MAX_VERSION}`);
  const at = o.effective_at;
  if (typeof at !== "number" || !Number.isInteger(at) || at < MIN_TIME || at > MAX_TIME)
    throw TallyError.validation("effective_at", "must be a time in epoch milliseconds between 2000 and 2200");
  return { version, effective_at: at, services: parseServices(o.services, "services") };
}

/** Validates a map of service name → service rate (at least one service). */
export function parseServices(input: unknown, path = "services"): Record<string, ServiceRate> {
  const o = object(input, path, null);
  const names = Object.keys(o);
  if (names.length === 0) throw TallyError.validation(path, "must price at least one service");
  if (names.length > L.MAX_SERVICES)
    throw TallyError.validation(path, `must have at most ${L.MAX_SERVICES} services`);
  const out: Record<string, ServiceRate> = {};
  for (const name of names) {
    const p = join(path, name);
    if (name.length > L.MAX_SERVICE_NAME_LENGTH)
      throw TallyError.validation(p, `has a name longer than ${L.MAX_SERVICE_NAME_LENGTH} characters`);
    if (!SERVICE_NAME.test(name))
      throw TallyError.validation(
        p,
        "has a name that is not letters, digits and _ - . : (starting with a letter or digit)",
      );
    out[name] = parseServiceRate(o[name], p);
  }
  const keys = new Set(names);
  for (const [name, s] of Object.entries(out))
    s.modifiers.forEach((m, i) => {
      if (m.multiplier_key === undefined) return;
      if (keys.has(m.multiplier_key))
        throw TallyError.validation(
          `${join(path, name)}.modifiers[${i}].multiplier_key`,
          `${m.multiplier_key} is already used by a service or another modifier`,
        );
      keys.add(m.multiplier_key);
    });
  return out;
}

/** Validates one service's rate; `path` names it in errors. */
export function parseServiceRate(input: unknown, path: string): ServiceRate {
  const o = object(input, path, SERVICE_FIELDS);
  const unit = name(o.unit, join(path, "unit"), UNIT_NAME, L.MAX_UNIT_LENGTH, "a unit (letters, digits, _)");
  const fee = present(o.fee) ? price(o.fee, join(path, "fee")) : 0n;
  const defaults = {
    increment: present(o.increment) ? positive(o.increment, join(path, "increment")) : 1n,
    minimum: present(o.minimum) ? quantity(o.minimum, join(path, "minimum")) : 0n,
  };
  let kind: ServiceRate["input"];
  let dimensions: DimensionRate[];
  if (present(o.price)) {
    if (present(o.dimensions))
      throw TallyError.validation(
        join(path, "dimensions"),
        "cannot be given with price: give one or the other",
      );
    kind = "quantity";
    const per = present(o.per) ? positive(o.per, join(path, "per")) : QTY_SCALE;
    dimensions = [
      { name: SINGLE_DIMENSION, unit, price: price(o.price, join(path, "price")), per, ...defaults },
    ];
  } else if (present(o.dimensions)) {
    if (present(o.per))
      throw TallyError.validation(
        join(path, "per"),
        "belongs to each dimension of a multi-dimension service",
      );
    kind = "quantities";
    const dp = join(path, "dimensions");
    const dims = object(o.dimensions, dp, null);
    const names = Object.keys(dims);
    if (names.length === 0 || names.length > L.MAX_DIMENSIONS)
      throw TallyError.validation(dp, `must have from 1 to ${L.MAX_DIMENSIONS} dimensions`);
    dimensions = names.map((n) => parseDimension(n, dims[n], join(dp, n), unit, defaults));
  } else {
    if (!present(o.fee))
      throw TallyError.validation(
        join(path, "price"),
        "is required (or dimensions, or only a fee for a fixed price per event)",
      );
    for (const f of ["per", "increment", "minimum"])
      if (present(o[f]))
        throw TallyError.validation(
          join(path, f),
          "applies only to a priced quantity (give price or dimensions)",
        );
    kind = "none";
    dimensions = [];
  }
  const modifiers: Modifier[] = [];
  if (present(o.modifiers)) {
    const mp = join(path, "modifiers");
    if (!Array.isArray(o.modifiers)) throw TallyError.validation(mp, "must be an array");
    if (o.modifiers.length > L.MAX_MODIFIERS)
      throw TallyError.validation(mp, `must have at most ${L.MAX_MODIFIERS} modifiers`);
    o.modifiers.forEach((m: unknown, i) => modifiers.push(parseModifier(m, `${mp}[${i}]`, kind, dimensions)));
  }
  const rate: ServiceRate = { unit, input: kind, dimensions, fee, modifiers };
  if (present(o.description))
    rate.description = text(o.description, join(path, "description"), L.MAX_DESCRIPTION_LENGTH);
  return rate;
}

function parseDimension(
  dimName: string,
  input: unknown,
  path: string,
  serviceUnit: string,
  defaults: { increment: bigint; minimum: bigint },
): DimensionRate {
  if (dimName.length > L.MAX_NAME_LENGTH || !DIMENSION_NAME.test(dimName))
    throw TallyError.validation(
      path,
      `has a name that is not an identifier of at most ${L.MAX_NAME_LENGTH} characters (letters, digits, _)`,
    );
  const o = object(input, path, DIMENSION_FIELDS);
  if (!present(o.price)) throw TallyError.validation(join(path, "price"), "is required");
  return {
    name: dimName,
    unit: present(o.unit)
      ? name(o.unit, join(path, "unit"), UNIT_NAME, L.MAX_UNIT_LENGTH, "a unit (letters, digits, _)")
      : serviceUnit,
    price: price(o.price, join(path, "price")),
    per: present(o.per) ? positive(o.per, join(path, "per")) : QTY_SCALE,
    increment: present(o.increment) ? positive(o.increment, join(path, "increment")) : defaults.increment,
    minimum: present(o.minimum) ? quantity(o.minimum, join(path, "minimum")) : defaults.minimum,
  };
}

function parseModifier(
  input: unknown,
  path: string,
  serviceInput: ServiceRate["input"],
  dimensions: readonly DimensionRate[],
): Modifier {
  const o = object(input, path, MODIFIER_FIELDS);
  const key = text(o.key, join(path, "key"), L.MAX_NAME_LENGTH);
  const value = modifierValue(o.value, join(path, "value"));
  const effects = (["multiply", "add_per_unit", "add_flat"] as const).filter((f) => present(o[f]));
  if (effects.length !== 1)
    throw TallyError.validation(path, "must have exactly one of multiply, add_per_unit, add_flat");
  const effect = effects[0]!;
  const names = dimensions.map((d) => d.name);
  let dimension: DimensionRate | undefined;
  if (present(o.dimension)) {
    const dn = text(o.dimension, join(path, "dimension"), L.MAX_NAME_LENGTH);
    dimension = dimensions.find((d) => d.name === dn);
    if (!dimension)
      throw TallyError.validation(
        join(path, "dimension"),
        names.length
          ? `must be one of ${names.join(", ")}`
          : "cannot be given: this service has no dimensions",
      );
  }
  if (effect !== "add_flat" && serviceInput === "none")
    throw TallyError.validation(
      join(path, effect),
      "needs a priced quantity: this service has a fixed price per event",
    );

  let m: Modifier;
  if (effect === "multiply") {
    const factor = parseQuantity(o.multiply, join(path, "multiply"), { max: L.MAX_FACTOR });
    m = { key, value, effect, factor, dimension: dimension?.name ?? null };
  } else if (effect === "add_per_unit") {
    const ap = join(path, "add_per_unit");
    const add = object(o.add_per_unit, ap, ["price", "per"]);
    if (!dimension) {
      if (serviceInput === "quantities")
        throw TallyError.validation(
          join(path, "dimension"),
          `is required for add_per_unit: one of ${names.join(", ")}`,
        );
      dimension = dimensions[0]!;
    }
    if (!present(add.price)) throw TallyError.validation(join(ap, "price"), "is required");
    m = {
      key,
      value,
      effect,
      price: price(add.price, join(ap, "price")),
      per: present(add.per) ? positive(add.per, join(ap, "per")) : dimension.per,
      dimension: dimension.name,
    };
  } else {
    if (dimension)
      throw TallyError.validation(join(path, "dimension"), "does not apply to add_flat (a per-event amount)");
    m = { key, value, effect, amount: price(o.add_flat, join(path, "add_flat")) };
  }
  if (present(o.multiplier_key)) {
    const kp = join(path, "multiplier_key");
    if (serviceInput !== "quantity" || effect === "add_flat")
      throw TallyError.validation(
        kp,
        "applies only to multiply or add_per_unit on a single-dimension service",
      );
    m.multiplier_key = name(
      o.multiplier_key,
      kp,
      SERVICE_NAME,
      L.MAX_SERVICE_NAME_LENGTH,
      "a service-like name",
    );
  }
  if (present(o.description))
    m.description = text(o.description, join(path, "description"), L.MAX_DESCRIPTION_LENGTH);
  return m;
}

/**
 * Checks that `next` may be added after `existing` versions: a higher version number, and an effective time
 * no earlier than any existing version's (a correction of a scheduled version takes the same time).
 * Whether it may take effect in the past is the caller's rule (it knows the clock).
 */
export function checkNextVersion(existing: readonly RateCard[], next: RateCard): void {
  for (const v of existing) {
    if (next.version <= v.version)
      throw TallyError.validation("version", `must be greater than the existing version ${v.version}`);
    if (next.effective_at < v.effective_at)
      throw TallyError.validation("effective_at", `must not be before version ${v.version}'s effective_at`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Field readers: each throws a validation error naming the JSON path.

function join(path: string, key: string): string {
  const k = key.length > L.MAX_SERVICE_NAME_LENGTH ? key.slice(0, L.MAX_SERVICE_NAME_LENGTH) + "…" : key;
  const seg = IDENT.test(k) ? k : `[${JSON.stringify(k)}]`;
  if (path === "") return seg;
  return seg.startsWith("[") ? `${path}${seg}` : `${path}.${seg}`;
}

/** An optional field is absent when missing or null. */
function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function object(
  input: unknown,
  path: string,
  allowed: readonly string[] | null,
  rootName = "rate_card",
): Record<string, unknown> {
  if (input === null || typeof input !== "object" || Array.isArray(input))
    throw TallyError.validation(path || rootName, "must be an object");
  const o = input as Record<string, unknown>;
  if (allowed)
    for (const k of Object.keys(o))
      if (!allowed.includes(k)) throw TallyError.validation(join(path, k), "is not a known field");
  return o;
}

function text(v: unknown, path: string, max: number): string {
  if (typeof v !== "string" || v.length === 0)
    throw TallyError.validation(path, "must be a non-empty string");
  if (v.length > max) throw TallyError.validation(path, `must be at most ${max} characters`);
  return v;
}

function name(v: unknown, path: string, pattern: RegExp, max: number, what: string): string {
  const s = text(v, path, max);
  if (!pattern.test(s)) throw TallyError.validation(path, `must be ${what}`);
  return s;
}

function modifierValue(v: unknown, path: string): ModifierValue {
  if (typeof v === "boolean") return v;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw TallyError.validation(path, "must be a finite number");
    return v;
  }
  if (typeof v === "string") return text(v, path, L.MAX_VALUE_LENGTH);
  throw TallyError.validation(path, "must be a string, a number or a boolean");
}

/** Credits (≤ 6 decimals), 0 to MAX_PRICE, in micro-credits. */
function price(v: unknown, path: string): bigint {
  const micros = parseCredits(v, path, { allowZero: true });
  if (micros > L.MAX_PRICE)
    throw TallyError.validation(path, `must not exceed ${formatCredits(L.MAX_PRICE)} credits`);
  return micros;
}

function quantity(v: unknown, path: string): bigint {
  return parseQuantity(v, path, { max: L.MAX_QUANTITY });
}

function positive(v: unknown, path: string): bigint {
  return parseQuantity(v, path, { max: L.MAX_QUANTITY, allowZero: false });
}
