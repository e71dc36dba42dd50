import { TallyError } from "./errors.ts";

/** 1 credit = 1,000,000 micro-credits. All amounts are bigint micro-credits. */
export const MICROS_PER_CREDIT = 1_000_000n;
/** Upper bound of any single amount: one trillion credits. Sums of many such amounts still fit in int64. */
export const MAX_AMOUNT = 1_000_000_000_000n * MICROS_PER_CREDIT;
/**
 * Most credits one account may be granted over its lifetime (4 × MAX_AMOUNT): keeps every per-account
 * journal sum (issued, consumed, overage) well inside a signed 64-bit column on both stores.
 */
export const MAX_ACCOUNT_GRANTED = 4n * MAX_AMOUNT;

const DECIMAL = /^(\d+)(?:\.(\d{1,6}))?$/;

/**
 * Parses a credit amount given by a user (number or decimal string, up to 6 decimals) into micro-credits.
 * Rejects negative, non-finite, non-numeric, over-precise and too-large input; never clamps.
 */
export function parseCredits(input: unknown, field: string, opts: { allowZero?: boolean } = {}): bigint {
  let text: string;
  if (typeof input === "number") {
    if (!Number.isFinite(input)) throw TallyError.validation(field, "must be a finite number");
    if (input < 0) throw TallyError.validation(field, "must not be negative");
    // Numbers beyond 2^53 have lost precision before they reach us.
    if (input > Number.MAX_SAFE_INTEGER) throw TallyError.validation(field, "is too large");
    text = numberToPlain(input, field);
  } else if (typeof input === "string") {
    text = input.trim();
  } else if (typeof input === "bigint") {
    text = input.toString();
  } else {
    throw TallyError.validation(field, "must be a number or a decimal string");
  }
  if (text.startsWith("-")) throw TallyError.validation(field, "must not be negative");
  const m = DECIMAL.exec(text);
  if (!m) {
    if (/^\d+\.\d{7,}$/.test(text)) throw TallyError.validation(field, "has more than 6 decimals");
    throw TallyError.validation(field, "must be a decimal number of credits");
  }
  const whole = BigInt(m[1]!);
  const frac = BigInt((m[2] ?? "").padEnd(6, "0"));
  const micros = whole * MICROS_PER_CREDIT + frac;
  checkAmount(micros, field, opts);
  return micros;
}

/** Range check for an amount already in micro-credits. */
export function checkAmount(micros: bigint, field: string, opts: { allowZero?: boolean } = {}): bigint {
  if (typeof micros !== "bigint")
    throw TallyError.validation(field, "must be an integer amount of micro-credits");
  if (micros < 0n) throw TallyError.validation(field, "must not be negative");
  if (micros === 0n && !opts.allowZero) throw TallyError.validation(field, "must be greater than zero");
  if (micros > MAX_AMOUNT)
    throw TallyError.validation(field, `must not exceed ${formatCredits(MAX_AMOUNT)} credits`);
  return micros;
}

/** Micro-credits to a plain decimal string of credits, without trailing zeros: 1500000n → "1.5". */
export function formatCredits(micros: bigint): string {
  return formatMillionths(micros);
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * An integer scaled by 10^6 as a plain decimal string without trailing zeros: 1500000n → "1.5". Below
 * 2^53 (every amount up to ~9 billion credits) the digits come from exact double arithmetic, which costs
 * a fraction of bigint division; larger values take the bigint path.
 */
export function formatMillionths(value: bigint): string {
  const neg = value < 0n;
  const abs = neg ? -value : value;
  if (abs <= SAFE) {
    const n = Number(abs);
    let frac = n % 1e6; // exact: fmod of integers below 2^53
    const whole = (n - frac) / 1e6; // exact: a multiple of 10^6 divided by 10^6
    const sign = neg ? "-" : "";
    if (frac === 0) return `${sign}${whole}`;
    let width = 6;
    while (frac % 10 === 0) {
      frac /= 10;
      width--;
    }
    return `${sign}${whole}.${String(frac).padStart(width, "0")}`;
  }
  const whole = abs / MICROS_PER_CREDIT;
  const frac = (abs % MICROS_PER_CREDIT).toString().padStart(6, "0").replace(/0+$/, "");
  return `${neg ? "-" : ""}${whole}${frac ? "." + frac : ""}`;
}

function numberToPlain(n: number, field: string): string {
  const s = String(n);
  // Below 2^53, only fractions under 1e-6 print with an exponent: they have more than 6 decimals.
  if (/e/i.test(s)) throw TallyError.validation(field, "has more than 6 decimals");
  return s;
}
