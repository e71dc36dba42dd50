import { formatCredits, parseCredits } from "../domain/amount.ts";
import { TallyError } from "../domain/errors.ts";
import type { Metadata, OveragePolicy } from "../ledger/types.ts";
import { checkId } from "../ledger/validate.ts";
import { billingStoreFor, type PlanRecord } from "../store/billing-store.ts";
import type { Store } from "../store/types.ts";
import { parseMoneyCents } from "./payg.ts";

/** A plan as the operator writes it: credits and money as decimal strings (or numbers), exact. */
export interface PlanInput {
  id: string;
  name: string;
  monthly_allowance: string | number;
  price?: string | number;
  currency?: string;
  overage_policy?: OveragePolicy;
  /** Money per overage credit, up to 6 decimals ("0.05" = 5 cents a credit). */
  overage_rate?: string | number;
  overage_limit?: string | number | null;
  rate_limit_tier?: string | null;
  rollover_cap?: string | number;
  metadata?: Metadata;
}

export const MAX_PLANS = 1000;
const RATE_MAX_MICROS = 1_000_000_000_000n; // a million currency units per credit

/** Money per credit as millionths of a currency unit, exactly: "0.05" → 50,000. */
export function parseRateMicros(input: unknown, field: string): bigint {
  const text = typeof input === "number" && Number.isFinite(input) ? String(input) : input;
  if (typeof text !== "string") throw TallyError.validation(field, "must be a decimal amount of money");
  const m = /^(\d{1,12})(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!m) {
    if (/^\s*-/.test(text)) throw TallyError.validation(field, "must not be negative");
    throw TallyError.validation(field, "must be a decimal amount of money with at most 6 decimals");
  }
  const v = BigInt(m[1]!) * 1_000_000n + BigInt((m[2] ?? "").padEnd(6, "0"));
  if (v > RATE_MAX_MICROS) throw TallyError.validation(field, "is too large");
  return v;
}

export function formatRateMicros(v: bigint): string {
  const whole = v / 1_000_000n;
  const frac = (v % 1_000_000n).toString().padStart(6, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}

/**
 * The charge in cents for `overageMicros` credits of overage at `rateMicros` per credit, rounded half up
 * to the cent once per statement: micro-credits × micro-units / 10^12 = units; × 100 = cents.
 */
export function overageChargeCents(overageMicros: bigint, rateMicros: bigint): bigint {
  if (overageMicros <= 0n || rateMicros <= 0n) return 0n;
  const scaled = overageMicros * rateMicros * 100n; // cents × 10^12
  const unit = 1_000_000_000_000n;
  return (scaled + unit / 2n) / unit;
}

/** Checks a plan and builds its record (no I/O). `base` is the stored plan when updating. */
export function buildPlan(input: PlanInput, now: number, base?: PlanRecord): PlanRecord {
  checkId(input.id, "id");
  if (typeof input.name !== "string" || input.name.trim() === "" || input.name.length > 200)
    throw TallyError.validation("name", "must be 1 to 200 characters");
  const policy = input.overage_policy ?? "block";
  if (policy !== "block" && policy !== "allow")
    throw TallyError.validation("overage_policy", "must be block or allow");
  const limit =
    input.overage_limit === undefined || input.overage_limit === null
      ? null
      : parseCredits(input.overage_limit, "overage_limit", { allowZero: true });
  if (limit !== null && policy !== "allow")
    throw TallyError.validation("overage_limit", "applies only with overage_policy allow");
  const currency = input.currency ?? "USD";
  if (!/^[A-Z]{3}$/.test(currency))
    throw TallyError.validation("currency", "must be a 3-letter ISO 4217 code");
  const tier = input.rate_limit_tier ?? null;
  if (tier !== null && !/^[A-Za-z0-9_-]{1,64}$/.test(tier))
    throw TallyError.validation("rate_limit_tier", "must be 1 to 64 letters, digits, _ or -");
  const metadata = input.metadata ?? {};
  if (JSON.stringify(metadata).length > 4096)
    throw TallyError.validation("metadata", "must be at most 4096 bytes of JSON");
  return {
    id: input.id,
    name: input.name.trim(),
    monthly_allowance: parseCredits(input.monthly_allowance, "monthly_allowance", { allowZero: true }),
    price_cents: input.price === undefined ? 0n : parseMoneyCents(input.price, "price"),
    currency,
    overage_policy: policy,
    overage_rate_micros:
      input.overage_rate === undefined ? 0n : parseRateMicros(input.overage_rate, "overage_rate"),
    overage_limit: limit,
    rate_limit_tier: tier,
    rollover_cap:
      input.rollover_cap === undefined
        ? 0n
        : parseCredits(input.rollover_cap, "rollover_cap", { allowZero: true }),
    status: base?.status ?? "active",
    metadata,
    created_at: base?.created_at ?? now,
    updated_at: now,
  };
}

/** Plans: create, read, update (takes effect at each subscription's next period), archive. */
export class Plans {
  constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {}

  private get db() {
    return billingStoreFor(this.store);
  }

  /** Creates a plan; the same id with the same content is a replay, with other content a conflict. */
  async create(input: PlanInput): Promise<{ plan: PlanRecord; replay: boolean }> {
    const plan = buildPlan(input, this.now());
    if ((await this.db.listPlans(true)).length >= MAX_PLANS)
      throw TallyError.validation("id", `at most ${MAX_PLANS} plans`);
    if (await this.db.insertPlan(plan)) return { plan, replay: false };
    const existing = (await this.db.getPlan(plan.id))!;
    if (sameContent(existing, plan)) return { plan: existing, replay: true };
    throw new TallyError("idempotency_conflict", `plan ${plan.id} exists with other settings`, {
      field: "id",
      id: plan.id,
    });
  }

  async get(id: string): Promise<PlanRecord> {
    const p = await this.db.getPlan(id);
    if (!p) throw TallyError.notFound("plan", id, "plan_id");
    return p;
  }

  list(includeArchived = false): Promise<PlanRecord[]> {
    return this.db.listPlans(includeArchived);
  }

  /** Replaces a plan's settings (fields not given keep their value). */
  async update(id: string, patch: Partial<Omit<PlanInput, "id">>): Promise<PlanRecord> {
    const cur = await this.get(id);
    const plan = buildPlan({ ...planToInput(cur), ...patch, id }, this.now(), cur);
    await this.db.updatePlan(plan);
    return plan;
  }

  /** Archived plans take no new subscriptions; existing ones keep renewing on them. */
  async archive(id: string): Promise<PlanRecord> {
    const cur = await this.get(id);
    const plan = { ...cur, status: "archived" as const, updated_at: this.now() };
    await this.db.updatePlan(plan);
    return plan;
  }
}

function sameContent(a: PlanRecord, b: PlanRecord): boolean {
  const strip = (p: PlanRecord) =>
    JSON.stringify({ ...p, created_at: 0, updated_at: 0, status: "" }, (_k, v: unknown) =>
      typeof v === "bigint" ? v.toString() : v,
    );
  return strip(a) === strip(b);
}

function planToInput(p: PlanRecord): PlanInput {
  return {
    id: p.id,
    name: p.name,
    monthly_allowance: formatCredits(p.monthly_allowance),
    price: (Number(p.price_cents) / 100).toFixed(2),
    currency: p.currency,
    overage_policy: p.overage_policy,
    overage_rate: formatRateMicros(p.overage_rate_micros),
    overage_limit: p.overage_limit === null ? null : formatCredits(p.overage_limit),
    rate_limit_tier: p.rate_limit_tier,
    rollover_cap: formatCredits(p.rollover_cap),
    metadata: p.metadata,
  };
}

/** A plan in API form: credits as decimal strings, money as decimal strings of the currency. */
export function planToApi(p: PlanRecord) {
  return {
    id: p.id,
    name: p.name,
    monthly_allowance: formatRateMicros(p.monthly_allowance),
    price: formatCents(p.price_cents),
    currency: p.currency,
    free: p.price_cents === 0n,
    overage_policy: p.overage_policy,
    overage_rate: formatRateMicros(p.overage_rate_micros),
    overage_limit: p.overage_limit === null ? null : formatRateMicros(p.overage_limit),
    rate_limit_tier: p.rate_limit_tier,
    rollover_cap: formatRateMicros(p.rollover_cap),
    status: p.status,
    metadata: p.metadata,
    created_at: new Date(p.created_at).toISOString(),
    updated_at: new Date(p.updated_at).toISOString(),
  };
}

export function formatCents(cents: bigint): string {
  const neg = cents < 0n;
  const c = neg ? -cents : cents;
  return `${neg ? "-" : ""}${c / 100n}.${(c % 100n).toString().padStart(2, "0")}`;
}
