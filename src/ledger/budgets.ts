/**
 * Spend caps checked inside the batch (src/budgets owns their records). The store loads each budget of the
 * batch's accounts with what was spent in the current cycle; commands for one account run serially inside
 * a batch under the account's lock, so a check here followed by a charge is atomic with the debit.
 */
import { TallyError } from "../domain/errors.ts";
import { formatCredits } from "../domain/amount.ts";
import type { BudgetState } from "./types.ts";
import type { Working } from "./working.ts";

function applicable(w: Working, accountId: string, apiKeyId: string | null): BudgetState[] {
  return (w.budgets.get(accountId) ?? []).filter((b) => b.api_key_id === null || b.api_key_id === apiKeyId);
}

/** Refuses with budget_exceeded when `amount` would take any applicable budget past its limit. */
export function checkBudgets(w: Working, accountId: string, apiKeyId: string | null, amount: bigint): void {
  for (const b of applicable(w, accountId, apiKeyId)) {
    if (b.spent + amount > b.limit)
      throw new TallyError(
        "budget_exceeded",
        `budget ${b.id} allows ${formatCredits(b.limit - b.spent)} more credits this cycle; ${formatCredits(amount)} asked`,
        {
          field: "amount",
          budget_id: b.id,
          limit: b.limit,
          spent: b.spent,
          cycle_start: b.cycle_start,
        },
      );
  }
}

/** Adds `amount` to what every applicable budget has spent this cycle (written with the batch). */
export function chargeBudgets(w: Working, accountId: string, apiKeyId: string | null, amount: bigint): void {
  if (amount <= 0n) return;
  for (const b of applicable(w, accountId, apiKeyId)) {
    b.spent += amount;
    const key = `${b.id}\u0000${b.cycle_start}`;
    const c = w.budgetCharges.get(key);
    if (c) c.amount += amount;
    else w.budgetCharges.set(key, { budget_id: b.id, cycle_start: b.cycle_start, amount });
  }
}
