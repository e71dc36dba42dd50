/**
 * Exact numbers for pricing: quantities as bigint micro-units, and bigint rationals for intermediate costs.
 * Never floating point: a number given by a user is read through its shortest decimal representation.
 */
import { formatMillionths } from "../amount.ts";
import { TallyError } from "../errors.ts";

/** Quantities (seconds, characters, tokens, ...) are held as integers of micro-units: 1 unit = 1,000,000. */
export const QTY_SCALE = 1_000_000n;
/** Most units one quantity (or `per`, increment, minimum) may be: one trillion (3.2 × 10^4 years of seconds). */
export const MAX_QUANTITY = 1_000_000_000_000n * QTY_SCALE;
/** Decimal places accepted in a quantity, as for credits. */
export const QTY_DECIMALS = 6;

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;
const MAX_TEXT_LENGTH = 40;

export interface DecimalOptions {
  /** Largest accepted value, scaled by 10^6 (default MAX_QUANTITY). */
  max?: bigint;
  /** Whether 0 is accepted (default true). */
  allowZero?: boolean;
}

/**
 * Reads a non-negative decimal given by a user (number, decimal string or bigint, at most 6 decimals)
 * into an integer scaled by 10^6. Rejects negative, non-finite, non-numeric, over-precise and too-large
 * input with a validation error naming `field`; never rounds, never clamps.
 */
export function parseQuantity(input: unknown, field: string, opts: DecimalOptions = {}): bigint {
  const max = opts.max ?? MAX_QUANTITY;
  let text: string;
  if (typeof input === "number") {
    if (!Number.isFinite(input)) throw TallyError.validation(field, "must be a finite number");
    if (input < 0) throw TallyError.validation(field, "must not be negative");
    if (input > Number.MAX_SAFE_INTEGER) throw tooLarge(field, max);
    text = String(input);
    // Below 2^53 only fractions under 1e-6 print with an exponent: they have more than 6 decimals.
    if (/e/i.test(text)) throw TallyError.validation(field, `has more than ${QTY_DECIMALS} decimals`);
  } else if (typeof input === "string") {
    text = input.trim();
    if (text.length > MAX_TEXT_LENGTH) throw TallyError.validation(field, "is too long");
  } else if (typeof input === "bigint") {
    text = input.toString();
  } else {
    throw TallyError.validation(field, "must be a number or a decimal string");
  }
  if (text.startsWith("-")) throw TallyError.validation(field, "must not be negative");
  const m = DECIMAL.exec(text);
  if (!m) throw TallyError.validation(field, "must be a decimal number");
  const frac = m[2] ?? "";
  if (frac.length > QTY_DECIMALS)
    throw TallyError.validation(field, `has more than ${QTY_DECIMALS} decimals`);
  const value = BigInt(m[1]!) * QTY_SCALE + BigInt(frac.padEnd(QTY_DECIMALS, "0"));
  if (value > max) throw tooLarge(field, max);
  if (value === 0n && opts.allowZero === false)
    throw TallyError.validation(field, "must be greater than zero");
  return value;
}

function tooLarge(field: string, max: bigint): TallyError {
  return TallyError.validation(field, `must not exceed ${formatScaled(max)}`);
}

/** A value scaled by 10^6 as a plain decimal string without trailing zeros: 90_500_000n → "90.5". */
export function formatScaled(value: bigint): string {
  return formatMillionths(value);
}

/** An exact non-negative rational number; `den` > 0. Reduced when returned by `ratio`. */
export interface Ratio {
  num: bigint;
  den: bigint;
}

export function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** num/den in lowest terms. */
export function ratio(num: bigint, den: bigint): Ratio {
  const g = gcd(num, den);
  return g > 1n ? { num: num / g, den: den / g } : { num, den };
}

/** ⌈num/den⌉ for num ≥ 0, den > 0. */
export function ceilDiv(num: bigint, den: bigint): bigint {
  return (num + den - 1n) / den;
}

/**
 * A ratio of micro-credits as a decimal string of credits with at most 12 decimals, rounded up at the
 * last place (display only: what is charged is the event's cost, rounded once to a micro-credit).
 */
export function formatRatioCredits(r: Ratio): string {
  // A whole number of micro-credits (most amounts, and every multiplier of 1) prints as plain credits.
  if (r.den === 1n && r.num >= 0n) return formatMillionths(r.num);
  const PICO_PER_MICRO = 1_000_000n;
  const pico = ceilDiv(r.num * PICO_PER_MICRO, r.den);
  const whole = pico / 1_000_000_000_000n;
  const frac = (pico % 1_000_000_000_000n).toString().padStart(12, "0").replace(/0+$/, "");
  return `${whole}${frac ? "." + frac : ""}`;
}
