import { formatCredits } from "../domain/amount.ts";
import type { AuditFinding, Store } from "../store/types.ts";

export interface AuditReport {
  ok: boolean;
  checked_at: number;
  counts: {
    transactions: number;
    postings: number;
    grants: number;
    holds: number;
    usages: number;
    accounts: number;
  };
  /** Journal totals by ledger account type, in credits. They sum to zero: nothing created or destroyed. */
  totals: Record<string, string>;
  discrepancies: AuditFinding[];
}

const SCAN_PAGE = 5000;
const MAX_REPORTED = 1000;

/**
 * Recomputes every grant, hold, usage and account from the journal and proves conservation:
 * each transaction balances, each account's postings sum to zero, every derived balance equals its postings.
 */
export async function runAudit(store: Store): Promise<AuditReport> {
  const facts = await store.auditFacts();
  const discrepancies = [...facts.findings];

  // Record-level checks that need the parts JSON: each usage's parts plus overage equal its cost.
  let after = 0;
  for (;;) {
    const page = await store.scanUsages(after, SCAN_PAGE);
    for (const { usage: u } of page) {
      let parts = 0n;
      let refunded = 0n;
      for (const p of u.parts) {
        parts += p.amount;
        refunded += p.refunded;
        if (p.refunded < 0n || p.refunded > p.amount)
          discrepancies.push({
            check: "usage_part_refund_in_range",
            id: u.id,
            expected: `0..${p.amount}`,
            actual: String(p.refunded),
          });
      }
      if (parts + u.overage !== u.cost)
        discrepancies.push({
          check: "usage_parts_sum_to_cost",
          id: u.id,
          expected: String(u.cost),
          actual: String(parts + u.overage),
        });
      if (refunded + u.overage_refunded !== u.refunded)
        discrepancies.push({
          check: "usage_refunds_sum",
          id: u.id,
          expected: String(u.refunded),
          actual: String(refunded + u.overage_refunded),
        });
    }
    if (page.length < SCAN_PAGE) break;
    after = page[page.length - 1]!.seq;
    if (discrepancies.length > MAX_REPORTED) break;
  }

  let total = 0n;
  const totals: Record<string, string> = {};
  for (const [k, v] of Object.entries(facts.totals)) {
    total += v;
    totals[k] = formatCredits(v);
  }
  if (total !== 0n)
    discrepancies.push({
      check: "journal_conserves_credits",
      id: "journal",
      expected: "0",
      actual: String(total),
    });

  return {
    ok: discrepancies.length === 0,
    checked_at: Date.now(),
    counts: facts.counts,
    totals,
    discrepancies: discrepancies.slice(0, MAX_REPORTED),
  };
}
