/**
 * Budgets: spend caps per cycle (the calendar month, UTC) on an account or on one of its API keys. The cap
 * is enforced inside the ledger batch (src/ledger/budgets.ts); this owns the records and reports the spend.
 */
import { TallyError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import type { Engine } from "../ledger/engine.ts";
import { authStoreFor } from "../store/auth-store.ts";
import { big, int, sqlFor, strOrNull, type Row, type Sql } from "../events/sql.ts";
import { budgetCycle } from "./cycle.ts";
import { MAX_AMOUNT } from "../domain/amount.ts";

export const MAX_BUDGETS_PER_ACCOUNT = 50;

export interface BudgetRecord {
  id: string;
  account_id: string;
  api_key_id: string | null;
  limit: bigint;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface BudgetStatus extends BudgetRecord {
  cycle_start: number;
  cycle_end: number;
  spent: bigint;
  remaining: bigint;
}

function rowToBudget(r: Row): BudgetRecord {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    api_key_id: strOrNull(r.api_key_id),
    limit: big(r.limit_amount),
    created_by: String(r.created_by),
    created_at: int(r.created_at),
    updated_at: int(r.updated_at),
  };
}

export class BudgetService {
  private readonly sql: Sql;

  constructor(private readonly engine: Engine) {
    this.sql = sqlFor(engine.store);
  }

  private checkLimit(limit: bigint): void {
    if (limit <= 0n || limit > MAX_AMOUNT)
      throw TallyError.validation("limit", "must be a positive amount of credits");
  }

  async create(input: {
    account_id: string;
    api_key_id?: string | null;
    limit: bigint;
    created_by: string;
  }): Promise<BudgetStatus> {
    this.checkLimit(input.limit);
    await this.engine.getAccount(input.account_id);
    const keyId = input.api_key_id ?? null;
    if (keyId !== null) {
      const key = await authStoreFor(this.engine.store).getKey(keyId);
      if (!key || key.account_id !== input.account_id)
        throw TallyError.notFound("API key", keyId, "api_key_id");
    }
    const count = await this.sql.one("SELECT COUNT(*) AS n FROM budgets WHERE account_id = ?", [
      input.account_id,
    ]);
    if (int(count?.n) >= MAX_BUDGETS_PER_ACCOUNT)
      throw TallyError.validation("account_id", `has ${MAX_BUDGETS_PER_ACCOUNT} budgets, the most allowed`);
    const now = this.engine.clock.now();
    const id = newId("bdg", now);
    await this.sql.run(
      `INSERT INTO budgets (id, account_id, api_key_id, limit_amount, created_by, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [id, input.account_id, keyId, input.limit, input.created_by, now, now],
    );
    return (await this.get(input.account_id, id))!;
  }

  async list(accountId: string): Promise<BudgetStatus[]> {
    const rows = await this.sql.all("SELECT * FROM budgets WHERE account_id = ? ORDER BY id", [accountId]);
    return this.withSpend(rows.map(rowToBudget));
  }

  /** The budget, only if it belongs to the account (another account's budget reads as missing). */
  async get(accountId: string, id: string): Promise<BudgetStatus | null> {
    const r = await this.sql.one("SELECT * FROM budgets WHERE id = ? AND account_id = ?", [id, accountId]);
    return r ? (await this.withSpend([rowToBudget(r)]))[0]! : null;
  }

  async require(accountId: string, id: string): Promise<BudgetStatus> {
    const b = await this.get(accountId, id);
    if (!b) throw TallyError.notFound("budget", id, "budget_id");
    return b;
  }

  async update(accountId: string, id: string, limit: bigint): Promise<BudgetStatus> {
    this.checkLimit(limit);
    await this.require(accountId, id);
    await this.sql.run(
      "UPDATE budgets SET limit_amount = ?, updated_at = ? WHERE id = ? AND account_id = ?",
      [limit, this.engine.clock.now(), id, accountId],
    );
    return this.require(accountId, id);
  }

  async remove(accountId: string, id: string): Promise<void> {
    await this.require(accountId, id);
    await this.sql.run("DELETE FROM budget_spend WHERE budget_id = ?", [id]);
    await this.sql.run("DELETE FROM budgets WHERE id = ? AND account_id = ?", [id, accountId]);
  }

  private async withSpend(budgets: BudgetRecord[]): Promise<BudgetStatus[]> {
    const cycle = budgetCycle(this.engine.clock.now());
    const out: BudgetStatus[] = [];
    for (const b of budgets) {
      const r = await this.sql.one("SELECT spent FROM budget_spend WHERE budget_id = ? AND cycle_start = ?", [
        b.id,
        cycle.start,
      ]);
      const spent = r ? big(r.spent) : 0n;
      const remaining = b.limit - spent;
      out.push({
        ...b,
        cycle_start: cycle.start,
        cycle_end: cycle.end,
        spent,
        remaining: remaining > 0n ? remaining : 0n,
      });
    }
    return out;
  }
}
