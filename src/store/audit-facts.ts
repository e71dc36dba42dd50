import { decodeParts } from "./codec.ts";
import { AUDIT_SQL } from "./audit-sql.ts";
import type { AuditFacts, AuditFinding } from "./types.ts";

type Row = Record<string, unknown>;

/** Runs the shared audit queries through a dialect's query function and gathers the findings. */
export async function collectAuditFacts(query: (sql: string) => Promise<Row[]>): Promise<AuditFacts> {
  const findings: AuditFinding[] = [];
  const add = (check: string, rows: Row[], expected: (r: Row) => string) => {
    for (const r of rows)
      findings.push({ check, id: String(r.id), expected: expected(r), actual: String(r.actual) });
  };
  add("transaction_balances", await query(AUDIT_SQL.unbalancedTxns), () => "0");
  add("grant_remaining_matches_journal", await query(AUDIT_SQL.grantMismatch), (r) => String(r.expected));
  add("closed_hold_is_empty", await query(AUDIT_SQL.holdClosedNonZero), () => "0");
  for (const r of await query(AUDIT_SQL.activeHolds)) {
    const held = decodeParts(String(r.parts)).reduce((s, p) => s + p.amount, 0n);
    if (held.toString() !== String(r.actual))
      findings.push({
        check: "hold_parts_match_journal",
        id: String(r.id),
        expected: held.toString(),
        actual: String(r.actual),
      });
  }
  add("ledger_has_owner", await query(AUDIT_SQL.orphanLedgers), () => "a grant or hold");
  add("account_overage_matches_journal", await query(AUDIT_SQL.accountOverage), (r) => String(r.expected));
  add("account_issued_matches_grants", await query(AUDIT_SQL.accountIssued), (r) => String(r.expected));
  add("account_conserves_credits", await query(AUDIT_SQL.accountNonZero), () => "0");
  add("usage_matches_consumed", await query(AUDIT_SQL.usageConsumed), (r) => String(r.expected));
  const totals: Record<string, bigint> = {};
  for (const r of await query(AUDIT_SQL.totals)) {
    const k = String(r.ledger);
    totals[k] = (totals[k] ?? 0n) + BigInt(String(r.s));
  }
  const c = (await query(AUDIT_SQL.counts))[0] ?? {};
  const n = (k: string) => Number(c[k] ?? 0);
  return {
    counts: {
      transactions: n("transactions"),
      postings: n("postings"),
      grants: n("grants"),
      holds: n("holds"),
      usages: n("usages"),
      accounts: n("accounts"),
    },
    totals,
    findings,
  };
}
