import { expect } from "vitest";
import { Plans, type PlanInput } from "../../src/billing/plans.ts";
import { Statements } from "../../src/billing/statements.ts";
import { Subscriptions } from "../../src/billing/subscriptions.ts";
import type { Engine } from "../../src/ledger/engine.ts";
import type { GrantRecord } from "../../src/ledger/types.ts";
import { billingStoreFor } from "../../src/store/billing-store.ts";
import type { EngineCtx } from "../engine/harness.ts";

export interface BillingCtx extends EngineCtx {
  plans: Plans;
  subs: Subscriptions;
  statements: Statements;
}

export function billing(c: EngineCtx): BillingCtx {
  return {
    ...c,
    plans: new Plans(c.store, () => c.clock.now()),
    subs: new Subscriptions(c.engine),
    statements: new Statements(c.engine),
  };
}

export async function plan(c: BillingCtx, input: Partial<PlanInput> & { id: string }): Promise<void> {
  await c.plans.create({ name: input.id, monthly_allowance: 0, ...input });
}

/** The account's grants of a kind, oldest first. */
export async function grantsOf(engine: Engine, account: string, kind?: string): Promise<GrantRecord[]> {
  const all = await engine.listGrants(account);
  return all.filter((g) => !kind || g.kind === kind).sort((a, b) => (a.order_key < b.order_key ? -1 : 1));
}

/**
 * Checks a statement against the journal: opening and closing equal the engine's balance (credits in
 * grants and holds) just before the cycle's start and end, and the lines add up.
 */
export async function expectReconciles(c: BillingCtx, account: string, start: number, end?: number) {
  const s = await c.statements.forWindow(account, start, end);
  expect(s.reconciles).toBe(true);
  expect(s.opening_balance).toBe(await balanceAfterExpiries(c, account, s.period_start));
  expect(s.closing_balance).toBe(await balanceAfterExpiries(c, account, s.period_end));
  return s;
}

/**
 * The engine's balance (grants and holds) just before `t`, less what expires exactly at `t` (the
 * statement's boundary rule), from the journal.
 */
async function balanceAfterExpiries(c: BillingCtx, account: string, t: number): Promise<bigint> {
  const total = (await c.engine.balance(account, t - 1)).total;
  const js = (await c.store.journalState(account, t - 1))!;
  let expiring = 0n;
  for (const g of await c.store.listGrants(account))
    if (g.expires_at === t) expiring += js.sums.get(`grant:${g.id}`) ?? 0n;
  return total - expiring;
}

export async function periodsOf(c: BillingCtx, account: string) {
  return (await billingStoreFor(c.store).listPeriods(account, 1000)).reverse();
}
