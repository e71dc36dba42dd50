import { MICROS_PER_CREDIT, formatCredits } from "../domain/amount.ts";
import { TallyError } from "../domain/errors.ts";
import type { Store } from "../store/types.ts";

/** Pay-as-you-go settings, as the seed's `GET /credits/payg/info` shows them. */
export interface PaygSettings {
  /** Micro-credits per whole unit of currency. */
  credits_per_dollar: bigint;
  min_amount_cents: bigint;
  max_amount_cents: bigint;
  currency: string;
}

/** The seed's figures: 7,500 credits per dollar, $1 to $1,000, USD. */
export const DEFAULT_PAYG: PaygSettings = {
  credits_per_dollar: 7500n * MICROS_PER_CREDIT,
  min_amount_cents: 100n,
  max_amount_cents: 100_000n,
  currency: "USD",
};

const KEY = "payg";

export async function loadPayg(store: Store): Promise<PaygSettings> {
  const text = await store.getSetting(KEY);
  if (!text) return DEFAULT_PAYG;
  const j = JSON.parse(text) as Record<string, string>;
  return {
    credits_per_dollar: BigInt(j.credits_per_dollar!),
    min_amount_cents: BigInt(j.min_amount_cents!),
    max_amount_cents: BigInt(j.max_amount_cents!),
    currency: j.currency!,
  };
}

export async function savePayg(store: Store, s: PaygSettings): Promise<void> {
  if (s.min_amount_cents <= 0n || s.max_amount_cents < s.min_amount_cents)
    throw TallyError.validation("max_amount_usd", "must be at least min_amount_usd, which must be positive");
  if (!/^[A-Z]{3}$/.test(s.currency))
    throw TallyError.validation("currency", "must be a 3-letter ISO 4217 code");
  // Bulk tiers must stay above the base rate, or a bigger purchase would buy less per dollar.
  const tiers = await loadTiers(store);
  if (tiers.some((t) => t.credits_per_dollar <= s.credits_per_dollar))
    throw TallyError.validation(
      "credits_per_dollar",
      "must stay below every bulk tier's credits_per_dollar (change the tiers first)",
    );
  await store.putSetting(
    KEY,
    JSON.stringify({
      credits_per_dollar: s.credits_per_dollar.toString(),
      min_amount_cents: s.min_amount_cents.toString(),
      max_amount_cents: s.max_amount_cents.toString(),
      currency: s.currency,
    }),
  );
}

/** Money in cents from a user's amount (number or string, at most 2 decimals); never floating point. */
export function parseMoneyCents(input: unknown, field: string): bigint {
  if (typeof input === "number" && (!Number.isFinite(input) || input > 1e12))
    throw TallyError.validation(field, "must be a finite amount");
  const text = typeof input === "number" ? String(input) : typeof input === "string" ? input.trim() : "";
  const m = /^(\d{1,12})(?:\.(\d{1,2}))?$/.exec(text);
  if (!m) {
    if (/^-/.test(text)) throw TallyError.validation(field, "must not be negative");
    throw TallyError.validation(field, "must be an amount of money with at most 2 decimals");
  }
  return BigInt(m[1]!) * 100n + BigInt((m[2] ?? "").padEnd(2, "0"));
}

export function formatMoney(cents: bigint): number {
  return Number(cents) / 100;
}

/**
 * A bulk tier: from `min_amount_cents` up, every dollar of the purchase buys `credits_per_dollar`
 * (micro-credits) instead of the base rate.
 */
export interface BulkTier {
  min_amount_cents: bigint;
  credits_per_dollar: bigint;
}

export const MAX_TIERS = 20;

/** The rate for an amount: the tier with the highest minimum at or below it, or the base rate. */
export function rateFor(amountCents: bigint, s: PaygSettings, tiers: readonly BulkTier[] = []): bigint {
  let rate = s.credits_per_dollar;
  let best = -1n;
  for (const t of tiers)
    if (t.min_amount_cents <= amountCents && t.min_amount_cents > best) {
      best = t.min_amount_cents;
      rate = t.credits_per_dollar;
    }
  return rate;
}

/** Credits a payment buys: amount × the applicable credits per dollar, rounded down to the micro-credit. */
export function creditsFor(amountCents: bigint, s: PaygSettings, tiers: readonly BulkTier[] = []): bigint {
  return (amountCents * rateFor(amountCents, s, tiers)) / 100n;
}

/** Tiers must give more credits per dollar the more is bought, so a bigger purchase never buys less. */
export function checkTiers(tiers: readonly BulkTier[], s: PaygSettings): BulkTier[] {
  if (tiers.length > MAX_TIERS) throw TallyError.validation("tiers", `must hold at most ${MAX_TIERS} tiers`);
  const sorted = [...tiers].sort((a, b) => (a.min_amount_cents < b.min_amount_cents ? -1 : 1));
  let prevRate = s.credits_per_dollar;
  let prevMin = 0n;
  for (const [i, t] of sorted.entries()) {
    if (t.min_amount_cents <= prevMin)
      throw TallyError.validation(
        `tiers.${i}.min_amount_usd`,
        "must be positive and different for every tier",
      );
    if (t.credits_per_dollar <= prevRate)
      throw TallyError.validation(
        `tiers.${i}.credits_per_dollar`,
        "must be more than the base rate and than every tier below it",
      );
    prevRate = t.credits_per_dollar;
    prevMin = t.min_amount_cents;
  }
  return sorted;
}

const TIERS_KEY = "payg.tiers";

export async function loadTiers(store: Store): Promise<BulkTier[]> {
  const text = await store.getSetting(TIERS_KEY);
  if (!text) return [];
  return (JSON.parse(text) as { min_amount_cents: string; credits_per_dollar: string }[]).map((t) => ({
    min_amount_cents: BigInt(t.min_amount_cents),
    credits_per_dollar: BigInt(t.credits_per_dollar),
  }));
}

export async function saveTiers(store: Store, tiers: readonly BulkTier[]): Promise<BulkTier[]> {
  const sorted = checkTiers(tiers, await loadPayg(store));
  await store.putSetting(
    TIERS_KEY,
    JSON.stringify(
      sorted.map((t) => ({
        min_amount_cents: t.min_amount_cents.toString(),
        credits_per_dollar: t.credits_per_dollar.toString(),
      })),
    ),
  );
  return sorted;
}

export function tierInfo(t: BulkTier) {
  return {
    min_amount_usd: formatMoney(t.min_amount_cents),
    credits_per_dollar: Number(formatCredits(t.credits_per_dollar)),
  };
}

/** Checks an amount against the minimum and maximum; returns the credits it buys (bulk tiers applied). */
export function quote(
  amountCents: bigint,
  s: PaygSettings,
  field = "amount_usd",
  tiers: readonly BulkTier[] = [],
): bigint {
  if (amountCents < s.min_amount_cents || amountCents > s.max_amount_cents)
    throw new TallyError(
      "validation_error",
      `${field} must be between ${formatMoney(s.min_amount_cents)} and ${formatMoney(s.max_amount_cents)} ${s.currency}`,
      { field, min: formatMoney(s.min_amount_cents), max: formatMoney(s.max_amount_cents) },
    );
  const credits = creditsFor(amountCents, s, tiers);
  if (credits <= 0n) throw TallyError.validation(field, "buys no credits");
  return credits;
}

export function paygInfo(s: PaygSettings) {
  return {
    credits_per_dollar: Number(formatCredits(s.credits_per_dollar)),
    min_amount_usd: formatMoney(s.min_amount_cents),
    max_amount_usd: formatMoney(s.max_amount_cents),
    currency: s.currency,
  };
}
