import type {
  AccountRecord,
  GrantRecord,
  HoldRecord,
  JournalEntry,
  RefundRecord,
  UsageRecord,
} from "../ledger/types.ts";
import type { EventRecord } from "../events/types.ts";
import type { CheckoutSession } from "./types.ts";
import { big, bigOrNull, decodeMetadata, decodeParts, decodeUsageParts, num, numOrNull } from "./codec.ts";

/** Row mappers shared by both stores: SQLite gives bigint, PostgreSQL gives strings for 64-bit columns. */
type Row = Record<string, unknown>;

export function rowToAccount(r: Row): AccountRecord {
  return {
    id: String(r.id),
    overage_policy: r.overage_policy as AccountRecord["overage_policy"],
    overage_limit: bigOrNull(r.overage_limit),
    overage_balance: big(r.overage_balance),
    granted_total: big(r.granted_total),
    status: r.status as AccountRecord["status"],
    metadata: decodeMetadata(r.metadata),
    created_at: num(r.created_at),
    request: String(r.request),
  };
}

export function rowToGrant(r: Row): GrantRecord {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    kind: r.kind as GrantRecord["kind"],
    amount: big(r.amount),
    remaining: big(r.remaining),
    priority: num(r.priority),
    effective_at: num(r.effective_at),
    expires_at: numOrNull(r.expires_at),
    created_at: num(r.created_at),
    order_key: String(r.order_key),
    status: r.status as GrantRecord["status"],
    closed_at: numOrNull(r.closed_at),
    source: (r.source as string | null) ?? null,
    reference: (r.reference as string | null) ?? null,
    metadata: decodeMetadata(r.metadata),
    request: String(r.request),
  };
}

export function rowToHold(r: Row): HoldRecord {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    amount: big(r.amount),
    parts: decodeParts(String(r.parts)),
    status: r.status as HoldRecord["status"],
    expires_at: num(r.expires_at),
    created_at: num(r.created_at),
    closed_at: numOrNull(r.closed_at),
    captured_amount: big(r.captured_amount),
    usage_id: (r.usage_id as string | null) ?? null,
    metadata: decodeMetadata(r.metadata),
    request: String(r.request),
  };
}

export function rowToUsage(r: Row): UsageRecord {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    service: String(r.service),
    quantity: (r.quantity as string | null) ?? null,
    cost: big(r.cost),
    overage: big(r.overage),
    overage_refunded: big(r.overage_refunded),
    refunded: big(r.refunded),
    parts: decodeUsageParts(String(r.parts)),
    hold_id: (r.hold_id as string | null) ?? null,
    occurred_at: num(r.occurred_at),
    recorded_at: num(r.recorded_at),
    metadata: decodeMetadata(r.metadata),
    txn_id: String(r.txn_id),
  };
}

export function rowToRefund(r: Row): RefundRecord {
  return {
    id: String(r.id),
    usage_id: String(r.usage_id),
    account_id: String(r.account_id),
    amount: big(r.amount),
    reason: (r.reason as string | null) ?? null,
    created_at: num(r.created_at),
    txn_id: String(r.txn_id),
    request: String(r.request),
  };
}

export function rowToEntry(r: Row): JournalEntry {
  return {
    seq: num(r.seq),
    txn_id: String(r.txn_id),
    account_id: String(r.account_id),
    ledger: String(r.ledger),
    amount: big(r.amount),
    kind: r.kind as JournalEntry["kind"],
    ref: String(r.ref),
    at: num(r.at),
  };
}

/** " subscription purchase overage " — the kinds a usage drew from, for the credit_source filter. */
export function usageSources(u: UsageRecord): string {
  // The common case, one part and no overage, without building a set.
  if (u.parts.length === 1 && u.overage <= 0n) return ` ${u.parts[0]!.kind} `;
  const kinds = new Set<string>(u.parts.map((p) => p.kind));
  if (u.overage > 0n) kinds.add("overage");
  return ` ${[...kinds].join(" ")} `;
}

export function rowToCheckout(r: Row): CheckoutSession {
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
  };
}

export function rowToEvent(r: Row): EventRecord {
  return {
    seq: num(r.seq),
    id: String(r.id),
    type: String(r.type),
    account_id: r.account_id === null ? null : String(r.account_id),
    data: decodeMetadata(r.data),
    created_at: num(r.created_at),
  };
}
