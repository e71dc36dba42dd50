import { TallyError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import { isLocalTestCard, LOCAL_TEST_CARDS } from "./providers/local.ts";
import type { PackRecord, PaymentMethodRecord, PurchaseStore } from "../store/purchase-store.ts";

/** Limits on the catalogue and on saved payment methods. */
export const CATALOG_LIMITS = {
  MAX_PACKS: 200,
  MAX_PACK_NAME: 100,
  MAX_PACK_DESCRIPTION: 500,
  MAX_PACK_EXPIRY_DAYS: 3650,
  MAX_METHODS_PER_ACCOUNT: 20,
} as const;

export interface PackInput {
  name: string;
  description?: string | null;
  credits: bigint;
  price_cents: bigint;
  currency: string;
  expires_after_days?: number | null;
  active?: boolean;
}

function checkPack(p: PackInput): void {
  const name = p.name.trim();
  if (name.length === 0 || name.length > CATALOG_LIMITS.MAX_PACK_NAME)
    throw TallyError.validation("name", `must be 1 to ${CATALOG_LIMITS.MAX_PACK_NAME} characters`);
  if (p.description != null && p.description.length > CATALOG_LIMITS.MAX_PACK_DESCRIPTION)
    throw TallyError.validation(
      "description",
      `must be at most ${CATALOG_LIMITS.MAX_PACK_DESCRIPTION} characters`,
    );
  if (p.credits <= 0n) throw TallyError.validation("credits", "must be positive");
  if (p.price_cents <= 0n) throw TallyError.validation("price_usd", "must be positive");
  if (!/^[A-Z]{3}$/.test(p.currency))
    throw TallyError.validation("currency", "must be a 3-letter ISO 4217 code");
  const d = p.expires_after_days;
  if (d != null && (!Number.isInteger(d) || d < 1 || d > CATALOG_LIMITS.MAX_PACK_EXPIRY_DAYS))
    throw TallyError.validation(
      "expires_after_days",
      `must be a whole number of days from 1 to ${CATALOG_LIMITS.MAX_PACK_EXPIRY_DAYS}, or null (never expires)`,
    );
}

export async function createPack(store: PurchaseStore, input: PackInput, now: number): Promise<PackRecord> {
  checkPack(input);
  if ((await store.listPacks(false, CATALOG_LIMITS.MAX_PACKS + 1)).length >= CATALOG_LIMITS.MAX_PACKS)
    throw TallyError.validation("name", `at most ${CATALOG_LIMITS.MAX_PACKS} packs may exist`);
  const pack: PackRecord = {
    id: newId("pack", now),
    name: input.name.trim(),
    description: input.description ?? null,
    credits: input.credits,
    price_cents: input.price_cents,
    currency: input.currency,
    expires_after_days: input.expires_after_days ?? null,
    active: input.active ?? true,
    created_at: now,
    updated_at: now,
  };
  await store.insertPack(pack);
  return pack;
}

/** Changes a pack for future purchases; purchases already made keep what they bought. */
export async function updatePack(
  store: PurchaseStore,
  id: string,
  patch: Partial<PackInput>,
  now: number,
): Promise<PackRecord> {
  const pack = await getPack(store, id);
  const next = { ...pack, ...definedOnly(patch), updated_at: now };
  checkPack(next);
  await store.updatePack(next);
  return next;
}

export async function getPack(store: PurchaseStore, id: string, field = "pack_id"): Promise<PackRecord> {
  const p = await store.getPack(id);
  if (!p) throw TallyError.notFound("pack", id, field);
  return p;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

export interface MethodInput {
  provider: "local" | "stripe";
  /** Stripe: the customer (cus_…). */
  customer_ref?: string | null;
  /** Stripe: pm_…; local: a test card (succeeds, declines, insufficient_funds). */
  method_ref: string;
  label?: string;
}

export async function addMethod(
  store: PurchaseStore,
  accountId: string,
  input: MethodInput,
  now: number,
): Promise<PaymentMethodRecord> {
  if (input.provider === "local") {
    if (!isLocalTestCard(input.method_ref))
      throw TallyError.validation(
        "method_ref",
        `must be a local test card: ${Object.keys(LOCAL_TEST_CARDS).join(", ")}`,
      );
  } else if (input.provider === "stripe") {
    if (!input.customer_ref || !/^cus_[A-Za-z0-9]{1,200}$/.test(input.customer_ref))
      throw TallyError.validation("customer_ref", "must be a Stripe customer id (cus_…)");
    if (!/^(pm|card|src)_[A-Za-z0-9_]{1,200}$/.test(input.method_ref))
      throw TallyError.validation("method_ref", "must be a Stripe payment method id (pm_…)");
  } else throw TallyError.validation("provider", "must be local or stripe");
  if ((await store.countMethods(accountId)) >= CATALOG_LIMITS.MAX_METHODS_PER_ACCOUNT)
    throw TallyError.validation(
      "method_ref",
      `an account may keep at most ${CATALOG_LIMITS.MAX_METHODS_PER_ACCOUNT} payment methods`,
    );
  const label = (input.label ?? "").trim() || `${input.provider} ${input.method_ref}`;
  if (label.length > 100) throw TallyError.validation("label", "must be at most 100 characters");
  const m: PaymentMethodRecord = {
    id: newId("pm", now),
    account_id: accountId,
    provider: input.provider,
    label,
    customer_ref: input.customer_ref ?? null,
    method_ref: input.method_ref,
    created_at: now,
    removed_at: null,
  };
  // Saving the same method twice keeps one: the second answer is the first record.
  if (!(await store.insertMethod(m)))
    return (await store.findMethod(accountId, input.provider, input.method_ref)) ?? m;
  return m;
}

/** A payment method of this account that is not removed. */
export async function methodOf(
  store: PurchaseStore,
  accountId: string,
  id: string,
): Promise<PaymentMethodRecord> {
  const m = await store.getMethod(id);
  if (!m || m.account_id !== accountId || m.removed_at !== null)
    throw TallyError.notFound("payment method", id, "payment_method_id");
  return m;
}
