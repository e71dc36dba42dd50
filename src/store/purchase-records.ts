import { big, bigOrNull, num, numOrNull } from "./codec.ts";
import type { CheckoutSession } from "./types.ts";

type Row = Record<string, unknown>;

/** A checkout session with everything purchases need beyond the seed's record. */
export interface CheckoutRecord extends CheckoutSession {
  pack_id: string | null;
  /** Lifetime of the credits from payment (a pack's expiry); null: they never expire. */
  credits_ttl_ms: number | null;
  /** The provider's id for the session (Stripe's cs_…; the local provider uses Tally's id). */
  provider_ref: string | null;
  /** Where the customer pays. */
  url: string | null;
  /** SHA-256 of the local checkout page's secret (local provider only). */
  secret_sha256: string | null;
  paid_at: number | null;
  payment_ref: string | null;
  closed_at: number | null;
  /** The customer asked to keep the payment method for later charges (auto-recharge). */
  save_method: boolean;
}

export type PurchaseStatus = "pending" | "paid" | "failed" | "refunding" | "refunded";

export interface PurchaseRecord {
  id: string;
  account_id: string;
  source: "checkout" | "auto_recharge";
  checkout_session_id: string | null;
  pack_id: string | null;
  amount_cents: bigint;
  currency: string;
  /** Micro-credits granted. */
  credits: bigint;
  credits_expire_at: number | null;
  grant_id: string;
  provider: string;
  payment_method_id: string | null;
  payment_ref: string | null;
  status: PurchaseStatus;
  failure_reason: string | null;
  refunded_cents: bigint;
  refunded_credits: bigint;
  refund_ref: string | null;
  refund_reason: string | null;
  created_at: number;
  paid_at: number | null;
  refunded_at: number | null;
  updated_at: number;
}

export interface PackRecord {
  id: string;
  name: string;
  description: string | null;
  credits: bigint;
  price_cents: bigint;
  currency: string;
  /** Credits bought with this pack expire this many days after payment; null: never. */
  expires_after_days: number | null;
  active: boolean;
  created_at: number;
  updated_at: number;
}

export interface PaymentMethodRecord {
  id: string;
  account_id: string;
  provider: string;
  label: string;
  /** Stripe customer (cus_…); null for the local provider. */
  customer_ref: string | null;
  /** Stripe payment method (pm_…) or the local test card ("succeeds", "declines"). */
  method_ref: string;
  created_at: number;
  removed_at: number | null;
}

export interface AutoRechargeRule {
  account_id: string;
  enabled: boolean;
  /** Micro-credits: recharge when the available balance falls below this. */
  threshold: bigint;
  pack_id: string | null;
  amount_cents: bigint | null;
  payment_method_id: string;
  max_per_period: number;
  cooldown_ms: number;
  /** First wait after a decline; doubles with each further decline (capped). */
  decline_backoff_ms: number;
}

export interface AutoRechargeState extends AutoRechargeRule {
  /** The calendar month (UTC, "2026-11") the counter belongs to. */
  period_key: string;
  count_in_period: number;
  next_attempt_at: number;
  lease_until: number;
  consecutive_declines: number;
  last_attempt_at: number | null;
  last_success_at: number | null;
  last_failure_at: number | null;
  last_failure_reason: string | null;
  created_at: number;
  updated_at: number;
}

export interface LocalPayment {
  id: string;
  reference: string;
  account_id: string;
  amount_cents: bigint;
  currency: string;
  refunded_cents: bigint;
  method: string;
  created_at: number;
}

const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

export function rowToSession(r: Row): CheckoutRecord {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    amount_cents: big(r.amount_cents),
    currency: String(r.currency),
    credits: big(r.credits),
    status: r.status as CheckoutSession["status"],
    provider: String(r.provider),
    created_at: num(r.created_at),
    expires_at: num(r.expires_at),
    pack_id: str(r.pack_id),
    credits_ttl_ms: numOrNull(r.credits_ttl_ms),
    provider_ref: str(r.provider_ref),
    url: str(r.url),
    secret_sha256: str(r.secret_sha256),
    paid_at: numOrNull(r.paid_at),
    payment_ref: str(r.payment_ref),
    closed_at: numOrNull(r.closed_at),
    save_method: num(r.save_method ?? 0) === 1,
  };
}

export function rowToPurchase(r: Row): PurchaseRecord {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    source: r.source as PurchaseRecord["source"],
    checkout_session_id: str(r.checkout_session_id),
    pack_id: str(r.pack_id),
    amount_cents: big(r.amount_cents),
    currency: String(r.currency),
    credits: big(r.credits),
    credits_expire_at: numOrNull(r.credits_expire_at),
    grant_id: String(r.grant_id),
    provider: String(r.provider),
    payment_method_id: str(r.payment_method_id),
    payment_ref: str(r.payment_ref),
    status: r.status as PurchaseStatus,
    failure_reason: str(r.failure_reason),
    refunded_cents: big(r.refunded_cents),
    refunded_credits: big(r.refunded_credits),
    refund_ref: str(r.refund_ref),
    refund_reason: str(r.refund_reason),
    created_at: num(r.created_at),
    paid_at: numOrNull(r.paid_at),
    refunded_at: numOrNull(r.refunded_at),
    updated_at: num(r.updated_at),
  };
}

export function rowToPack(r: Row): PackRecord {
  return {
    id: String(r.id),
    name: String(r.name),
    description: str(r.description),
    credits: big(r.credits),
    price_cents: big(r.price_cents),
    currency: String(r.currency),
    expires_after_days: numOrNull(r.expires_after_days),
    active: num(r.active) === 1,
    created_at: num(r.created_at),
    updated_at: num(r.updated_at),
  };
}

export function rowToMethod(r: Row): PaymentMethodRecord {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    provider: String(r.provider),
    label: String(r.label),
    customer_ref: str(r.customer_ref),
    method_ref: String(r.method_ref),
    created_at: num(r.created_at),
    removed_at: numOrNull(r.removed_at),
  };
}

export function rowToRule(r: Row): AutoRechargeState {
  return {
    account_id: String(r.account_id),
    enabled: num(r.enabled) === 1,
    threshold: big(r.threshold),
    pack_id: str(r.pack_id),
    amount_cents: bigOrNull(r.amount_cents),
    payment_method_id: String(r.payment_method_id),
    max_per_period: num(r.max_per_period),
    cooldown_ms: num(r.cooldown_ms),
    decline_backoff_ms: num(r.decline_backoff_ms),
    period_key: String(r.period_key),
    count_in_period: num(r.count_in_period),
    next_attempt_at: num(r.next_attempt_at),
    lease_until: num(r.lease_until),
    consecutive_declines: num(r.consecutive_declines),
    last_attempt_at: numOrNull(r.last_attempt_at),
    last_success_at: numOrNull(r.last_success_at),
    last_failure_at: numOrNull(r.last_failure_at),
    last_failure_reason: str(r.last_failure_reason),
    created_at: num(r.created_at),
    updated_at: num(r.updated_at),
  };
}

export function rowToLocalPayment(r: Row): LocalPayment {
  return {
    id: String(r.id),
    reference: String(r.reference),
    account_id: String(r.account_id),
    amount_cents: big(r.amount_cents),
    currency: String(r.currency),
    refunded_cents: big(r.refunded_cents),
    method: String(r.method),
    created_at: num(r.created_at),
  };
}
