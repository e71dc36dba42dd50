/**
 * What the PostgreSQL store loads and writes in a ledger batch beyond the ledger itself: budgets with their
 * current-cycle spend (read after the batch locked its accounts) and the hourly usage rollup. One query each.
 */
import type pg from "pg";
import { hourlyDeltas } from "../../analytics/rollup.ts";
import { budgetCycleStart } from "../../budgets/cycle.ts";
import type { BudgetState } from "../../ledger/types.ts";
import type { ChangeSet } from "../../ledger/working.ts";

export async function loadBudgets(
  c: pg.PoolClient,
  accountIds: string[],
  now: number,
): Promise<BudgetState[]> {
  if (accountIds.length === 0) return [];
  const cycle = budgetCycleStart(now);
  const { rows } = await c.query(
    `SELECT b.id, b.account_id, b.api_key_id, b.limit_amount, COALESCE(s.spent, 0) AS spent FROM budgets b
     LEFT JOIN budget_spend s ON s.budget_id = b.id AND s.cycle_start = $1 WHERE b.account_id = ANY($2)`,
    [cycle, accountIds],
  );
  return rows.map((r: Record<string, unknown>) => ({
    id: String(r.id),
    account_id: String(r.account_id),
    api_key_id: r.api_key_id == null ? null : String(r.api_key_id),
    limit: BigInt(String(r.limit_amount)),
    cycle_start: cycle,
    spent: BigInt(String(r.spent)),
  }));
}

export async function writeExtras(c: pg.PoolClient, ch: ChangeSet): Promise<void> {
  const charges = ch.budget_charges ?? [];
  if (charges.length)
    await c.query(
      `INSERT INTO budget_spend (budget_id, cycle_start, spent)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
       ON CONFLICT (budget_id, cycle_start) DO UPDATE SET spent = budget_spend.spent + excluded.spent`,
      [
        charges.map((b) => b.budget_id),
        charges.map((b) => b.cycle_start),
        charges.map((b) => String(b.amount)),
      ],
    );
  const d = hourlyDeltas(ch);
  if (d.length)
    await c.query(
      `INSERT INTO usage_hourly AS h (account_id, hour, service, credits, refunded, events, quantity)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::float8[])
       ON CONFLICT (account_id, hour, service) DO UPDATE SET credits = h.credits + excluded.credits,
         refunded = h.refunded + excluded.refunded, events = h.events + excluded.events,
         quantity = h.quantity + excluded.quantity`,
      [
        d.map((x) => x.account_id),
        d.map((x) => x.hour),
        d.map((x) => x.service),
        d.map((x) => String(x.credits)),
        d.map((x) => String(x.refunded)),
        d.map((x) => x.events),
        d.map((x) => x.quantity),
      ],
    );
}
