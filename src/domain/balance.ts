import type { Balance, GrantKind, GrantRecord, HoldRecord } from "../ledger/types.ts";
import { GRANT_KINDS } from "../ledger/types.ts";
import { isExpiredAt } from "./burndown.ts";

/**
 * Balance of one account at instant `at`, from grant remainders and holds as they stand at `at`.
 * A hold past its expiry no longer holds anything: its parts count as released to their grants
 * (and are spendable only if those grants still are). Expired credits are never available, swept or not.
 */
export function computeBalance(
  accountId: string,
  grants: readonly GrantRecord[],
  holds: readonly HoldRecord[],
  overage: bigint,
  at: number,
): Balance {
  const byKind = Object.fromEntries(GRANT_KINDS.map((k) => [k, 0n])) as Record<GrantKind, bigint>;
  const extra = new Map<string, bigint>();
  let held = 0n;
  for (const h of holds) {
    if (h.status !== "active") continue;
    if (h.expires_at > at) {
      for (const p of h.parts) held += p.amount;
    } else {
      for (const p of h.parts) extra.set(p.grant_id, (extra.get(p.grant_id) ?? 0n) + p.amount);
    }
  }
  let available = 0n;
  let scheduled = 0n;
  for (const g of grants) {
    if (g.status !== "active") continue;
    const rem = g.remaining + (extra.get(g.id) ?? 0n);
    if (rem <= 0n || isExpiredAt(g, at)) continue;
    if (g.effective_at > at) {
      scheduled += rem;
      continue;
    }
    available += rem;
    byKind[g.kind] += rem;
  }
  return {
    account_id: accountId,
    at,
    total: available + held,
    available,
    held,
    overage,
    by_kind: byKind,
    scheduled,
  };
}
