/**
 * What the SQLite store loads and writes in a ledger batch beyond the ledger itself: budgets with their
 * current-cycle spend (read under the batch's write lock) and the hourly usage rollup.
 */
import type Database from "better-sqlite3";
import { hourlyDeltas } from "../../analytics/rollup.ts";
import { budgetCycleStart } from "../../budgets/cycle.ts";
import type { BudgetState } from "../../ledger/types.ts";
import type { ChangeSet } from "../../ledger/working.ts";

type Row = Record<string, unknown>;
type Stmt = Database.Statement<unknown[], Row>;
const cache = new WeakMap<Database.Database, Map<string, Stmt>>();

function s(db: Database.Database, sql: string): Stmt {
  let m = cache.get(db);
  if (!m) cache.set(db, (m = new Map()));
  let st = m.get(sql);
  if (!st) m.set(sql, (st = db.prepare(sql) as Stmt));
  return st;
}

export function loadBudgets(db: Database.Database, accountIds: Iterable<string>, now: number): BudgetState[] {
  // Most installations have no budgets: one index probe per batch skips the lookup. It runs inside the
  // batch's transaction, so a budget another connection created is seen by the next batch.
  if (s(db, "SELECT 1 FROM budgets LIMIT 1").get() === undefined) return [];
  const cycle = budgetCycleStart(now);
  const out: BudgetState[] = [];
  const q = s(
    db,
    `SELECT b.id, b.account_id, b.api_key_id, b.limit_amount, COALESCE(s.spent, 0) AS spent FROM budgets b
     LEFT JOIN budget_spend s ON s.budget_id = b.id AND s.cycle_start = ?
     WHERE b.account_id IN (SELECT value FROM json_each(?)) ORDER BY b.account_id, b.id`,
  );
  for (const r of q.all(cycle, JSON.stringify([...accountIds])))
    out.push({
      id: String(r.id),
      account_id: String(r.account_id),
      api_key_id: r.api_key_id == null ? null : String(r.api_key_id),
      limit: BigInt(r.limit_amount as bigint),
      cycle_start: cycle,
      spent: BigInt(r.spent as bigint),
    });
  return out;
}

/** Writes rows with multi-row INSERTs (SqliteStore.insertMany); `push` appends one row's values. */
export type InsertMany = <T>(
  table: string,
  columns: string,
  rows: readonly T[],
  push: (row: T, args: unknown[]) => void,
  tail?: string,
) => void;

export function writeExtras(db: Database.Database, c: ChangeSet, insertMany: InsertMany): void {
  const spend = s(
    db,
    `INSERT INTO budget_spend (budget_id, cycle_start, spent) VALUES (?, ?, ?)
     ON CONFLICT (budget_id, cycle_start) DO UPDATE SET spent = spent + excluded.spent`,
  );
  for (const b of c.budget_charges ?? []) spend.run(b.budget_id, b.cycle_start, b.amount);
  // One row per (account, hour, service) of the batch, upserted 64 rows per statement.
  insertMany(
    "usage_hourly",
    "account_id, hour, service, credits, refunded, events, quantity",
    hourlyDeltas(c),
    (d, a) => a.push(d.account_id, d.hour, d.service, d.credits, d.refunded, d.events, d.quantity),
    ` ON CONFLICT (account_id, hour, service) DO UPDATE SET credits = credits + excluded.credits,
       refunded = refunded + excluded.refunded, events = events + excluded.events, quantity = quantity + excluded.quantity`,
  );
}
