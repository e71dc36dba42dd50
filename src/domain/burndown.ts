import type { GrantRecord, Part } from "../ledger/types.ts";

/** A grant can be spent at `at` when it is active, effective, not expired, and has something left. */
export function isSpendable(g: GrantRecord, at: number): boolean {
  return g.status === "active" && g.remaining > 0n && g.effective_at <= at && !isExpiredAt(g, at);
}

export function isExpiredAt(g: Pick<GrantRecord, "expires_at">, at: number): boolean {
  return g.expires_at !== null && g.expires_at <= at;
}

/**
 * Burn-down order: priority ascending, then expires_at ascending (no expiry last), then creation order
 * (created_at, then order_key: made at creation, time-sortable and monotonic, whatever id the client chose).
 */
export function compareBurnDown(a: GrantRecord, b: GrantRecord): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  const ae = a.expires_at ?? Number.POSITIVE_INFINITY;
  const be = b.expires_at ?? Number.POSITIVE_INFINITY;
  if (ae !== be) return ae < be ? -1 : 1;
  if (a.created_at !== b.created_at) return a.created_at - b.created_at;
  return a.order_key < b.order_key ? -1 : a.order_key > b.order_key ? 1 : 0;
}

export interface AllocationPlan {
  parts: Part[];
  covered: bigint;
  shortfall: bigint;
}

/** Plans how `amount` is taken from `grants` at `at`. Pure: the grants are not modified. */
export function planAllocation(grants: readonly GrantRecord[], amount: bigint, at: number): AllocationPlan {
  const spendable = grants.filter((g) => isSpendable(g, at)).sort(compareBurnDown);
  const parts: Part[] = [];
  let left = amount;
  for (const g of spendable) {
    if (left === 0n) break;
    const take = g.remaining < left ? g.remaining : left;
    parts.push({ grant_id: g.id, kind: g.kind, amount: take });
    left -= take;
  }
  return { parts, covered: amount - left, shortfall: left };
}

export function sumParts(parts: readonly { amount: bigint }[]): bigint {
  let s = 0n;
  for (const p of parts) s += p.amount;
  return s;
}
