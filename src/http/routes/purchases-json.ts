import { Type } from "@fastify/type-provider-typebox";
import { formatCredits } from "../../domain/amount.ts";
import { TallyError } from "../../domain/errors.ts";
import { formatMoney, parseMoneyCents } from "../../billing/payg.ts";
import type {
  AutoRechargeState,
  CheckoutRecord,
  PackRecord,
  PaymentMethodRecord,
  PurchaseRecord,
} from "../../store/purchase-store.ts";
import { purchaseIdForSession } from "../../billing/purchases.ts";

/** API shapes of purchases: credits as decimal strings, money as numbers in the currency's unit, ISO times. */
const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function packJson(p: PackRecord) {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    credits: formatCredits(p.credits),
    price_usd: formatMoney(p.price_cents),
    currency: p.currency,
    expires_after_days: p.expires_after_days,
    active: p.active,
    created_at: iso(p.created_at),
    updated_at: iso(p.updated_at),
  };
}

export function purchaseJson(p: PurchaseRecord) {
  return {
    id: p.id,
    account_id: p.account_id,
    source: p.source,
    status: p.status,
    checkout_session_id: p.checkout_session_id,
    pack_id: p.pack_id,
    amount_usd: formatMoney(p.amount_cents),
    currency: p.currency,
    credits: formatCredits(p.credits),
    credits_expire_at: iso(p.credits_expire_at),
    grant_id: p.grant_id,
    provider: p.provider,
    payment_method_id: p.payment_method_id,
    failure_reason: p.failure_reason,
    refunded_usd: formatMoney(p.refunded_cents),
    refunded_credits: formatCredits(p.refunded_credits),
    refund_reason: p.refund_reason,
    created_at: iso(p.created_at),
    paid_at: iso(p.paid_at),
    refunded_at: iso(p.refunded_at),
  };
}

export function sessionJson(s: CheckoutRecord) {
  return {
    id: s.id,
    account_id: s.account_id,
    status: s.status,
    provider: s.provider,
    amount_usd: formatMoney(s.amount_cents),
    currency: s.currency,
    credits: formatCredits(s.credits),
    pack_id: s.pack_id,
    checkout_url: s.status === "open" ? s.url : null,
    purchase_id: s.status === "paid" ? purchaseIdForSession(s.id) : null,
    created_at: iso(s.created_at),
    expires_at: iso(s.expires_at),
    paid_at: iso(s.paid_at),
  };
}

export function methodJson(m: PaymentMethodRecord) {
  return {
    id: m.id,
    account_id: m.account_id,
    provider: m.provider,
    label: m.label,
    customer_ref: m.customer_ref,
    method_ref: m.method_ref,
    created_at: iso(m.created_at),
  };
}

export function ruleJson(r: AutoRechargeState) {
  return {
    account_id: r.account_id,
    enabled: r.enabled,
    threshold: formatCredits(r.threshold),
    pack_id: r.pack_id,
    amount_usd: r.amount_cents === null ? null : formatMoney(r.amount_cents),
    payment_method_id: r.payment_method_id,
    max_per_period: r.max_per_period,
    cooldown_seconds: r.cooldown_ms / 1000,
    decline_backoff_seconds: r.decline_backoff_ms / 1000,
    period: r.period_key || null,
    recharges_in_period: r.count_in_period,
    next_attempt_at: r.next_attempt_at > 0 ? iso(r.next_attempt_at) : null,
    consecutive_declines: r.consecutive_declines,
    last_attempt_at: iso(r.last_attempt_at),
    last_success_at: iso(r.last_success_at),
    last_failure_at: iso(r.last_failure_at),
    last_failure_reason: r.last_failure_reason,
  };
}

export const Money = Type.Union([Type.Number(), Type.String({ maxLength: 20 })], {
  description: 'an amount of money in the currency\'s unit, at most 2 decimals (25, "25.50")',
});

/** A purchase's spec from a body: exactly one of amount_usd and pack_id. */
export function specOf(body: { amount_usd?: number | string; pack_id?: string }) {
  if ((body.pack_id === undefined) === (body.amount_usd === undefined))
    throw TallyError.validation("pack_id", "give either pack_id or amount_usd");
  return body.pack_id !== undefined
    ? { pack_id: body.pack_id }
    : { amount_cents: parseMoneyCents(body.amount_usd, "amount_usd") };
}
