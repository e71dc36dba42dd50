/**
 * What the PostgreSQL store loads and writes in a ledger batch beyond the ledger itself: budgets with their
 * current-cycle spend (read after the batch locked its accounts) and the hourly usage rollup. Each is a
 * piece of the batch's one load statement or one write statement (./batch.ts).
 */
import { hourlyDeltas } from "../../analytics/rollup.ts";
import type { BudgetState } from "../../ledger/types.ts";
import type { ChangeSet } from "../../ledger/working.ts";
import { branch } from "./row-sets.ts";

/** A statement (local parameters $1…) and its values, to be combined with others into one statement. */
export interface Section {
  sql: string;
  values: unknown[];
}

/** Budgets of the accounts $1 with their spend in the cycle starting at $2: a branch of the batch's load. */
export const BUDGETS_BRANCH = branch(
  "budget",
  "b",
  `budgets b LEFT JOIN budget_spend s ON s.budget_id = b.id AND s.cycle_start = $2 WHERE b.account_id = ANY($1)`,
  { spent: "COALESCE(s.spent, 0)" },
);

export function toBudget(r: Record<string, unknown>, cycle: number): BudgetState {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    api_key_id: r.api_key_id == null ? null : String(r.api_key_id),
    limit: BigInt(String(r.limit_amount)),
    cycle_start: cycle,
    spent: BigInt(String(r.spent)),
  };
}

export function extraSections(ch: ChangeSet): Section[] {
  const out: Section[] = [];
  const charges = ch.budget_charges ?? [];
  if (charges.length)
    out.push({
      sql: `INSERT INTO budget_spend (budget_id, cycle_start, spent)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
       ON CONFLICT (budget_id, cycle_start) DO UPDATE SET spent = budget_spend.spent + excluded.spent`,
      values: [
        charges.map((b) => b.budget_id),
        charges.map((b) => b.cycle_start),
        charges.map((b) => String(b.amount)),
      ],
    });
  const d = hourlyDeltas(ch);
  if (d.length)
    out.push({
      sql: `INSERT INTO usage_hourly AS h (account_id, hour, service, credits, refunded, events, quantity)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::float8[])
       ON CONFLICT (account_id, hour, service) DO UPDATE SET credits = h.credits + excluded.credits,
         refunded = h.refunded + excluded.refunded, events = h.events + excluded.events,
         quantity = h.quantity + excluded.quantity`,
      values: [
        d.map((x) => x.account_id),
        d.map((x) => x.hour),
        d.map((x) => x.service),
        d.map((x) => String(x.credits)),
        d.map((x) => String(x.refunded)),
        d.map((x) => x.events),
        d.map((x) => x.quantity),
      ],
    });
  return out;
}
