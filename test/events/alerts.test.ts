/** Alert rules: one event per crossing under concurrent debits and racing evaluators, and a recovery. */
import { expect, it } from "vitest";
import { AlertService } from "../../src/alerts/service.ts";
import { BudgetService } from "../../src/budgets/service.ts";
import { Engine } from "../../src/ledger/engine.ts";
import { DAY_MS, HOUR_MS, calendarMonth } from "../../src/domain/analytics.ts";
import { describeEachStore } from "../support/stores.ts";
import { cr, expectTallyError, fundedAccount, uid, useEngine } from "../engine/harness.ts";

describeEachStore("alerts", (kind) => {
  const t = useEngine(kind);

  const alertEvents = async (account: string) =>
    (
      await t.engine.listEvents({
        account_id: account,
        types: ["alert.triggered", "alert.recovered"],
        limit: 1000,
      })
    ).map((e) => [e.type, e.data.rule_id] as [string, string]);
  const debit = (account_id: string, credits: number) =>
    t.engine.debit({ id: uid("u"), account_id, amount: cr(credits), service: "llm" });

  it("fires once per crossing under concurrent debits and racing evaluators, recovers once, fires again", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(150) }]);
    const alerts = new AlertService(t.engine);
    // A second evaluator on its own connection to the same database, as another server process would be.
    const engine2 = new Engine(await t.db.open(), { clock: t.clock });
    const other = new AlertService(engine2);
    alerts.start(3_600_000);
    const rule = await alerts.create(
      account,
      { condition: { kind: "balance_below", amount: cr(100) } },
      "operator",
    );
    expect(rule.state).toBe("armed");
    await Promise.all(Array.from({ length: 20 }, () => debit(account, 5)));
    await Promise.all([
      alerts.flush(),
      other.evaluate(account),
      other.evaluate(account),
      alerts.evaluate(account),
    ]);
    await alerts.flush();
    expect(await alertEvents(account)).toEqual([["alert.triggered", rule.id]]);
    const fired = await alerts.require(account, rule.id);
    expect(fired.state).toBe("fired");
    // Recovery: a grant lifts the balance above the threshold.
    await t.engine.grant({ account_id: account, kind: "purchase", amount: cr(100) });
    await Promise.all([alerts.flush(), other.evaluate(account)]);
    await alerts.flush();
    expect(await alertEvents(account)).toEqual([
      ["alert.triggered", rule.id],
      ["alert.recovered", rule.id],
    ]);
    // A second crossing fires again.
    await Promise.all(Array.from({ length: 10 }, () => debit(account, 10)));
    await Promise.all([alerts.flush(), other.evaluate(account)]);
    await alerts.flush();
    await alerts.stop();
    await engine2.close();
    expect((await alertEvents(account)).map((e) => e[0])).toEqual([
      "alert.triggered",
      "alert.recovered",
      "alert.triggered",
    ]);
    expect((await alerts.require(account, rule.id)).crossings).toBe(2);
    const [last] = await t.engine.listEvents({
      account_id: account,
      types: ["alert.triggered"],
      after_seq: 0,
      limit: 1,
    });
    expect(last!.data).toMatchObject({
      kind: "balance_below",
      condition: { amount: "100" },
      severity: "warning",
    });
  });

  it("every rule kind: percent of allowance, usage, depleted, expiring grant, run-out, burn rate, budget", async () => {
    t.clock.set(calendarMonth(t.clock.now()).end + 2 * DAY_MS);
    const period = calendarMonth(t.clock.now());
    const { account } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(100), effective_at: period.start, expires_at: period.end },
    ]);
    const alerts = new AlertService(t.engine);
    const budgets = new BudgetService(t.engine);
    const budget = await budgets.create({ account_id: account, limit: cr(95), created_by: "operator" });
    const mk = (condition: Parameters<AlertService["create"]>[1]["condition"]) =>
      alerts.create(
        account,
        { condition, severity: "critical", metadata: { auto_purchase: { amount_usd: 50 } } },
        "operator",
      );
    const below = await mk({ kind: "balance_below_percent", percent: 20 });
    const usage = await mk({ kind: "usage_above_percent", percent: 50 });
    const depleted = await mk({ kind: "depleted" });
    const expiring = await mk({ kind: "grant_expiring", days: 3 });
    const runout = await mk({ kind: "runout_within", hours: 24 });
    const burn = await mk({ kind: "burn_rate_above", multiple: 3 });
    const bud = await mk({ kind: "budget_used_percent", percent: 80, budget_id: budget.id });
    const fired = async () =>
      new Set((await alerts.list(account)).filter((r) => r.state === "fired").map((r) => r.id));

    // A steady 1 credit per hour for two days: nothing is breached.
    for (let i = 0; i < 48; i++) {
      t.clock.advance(HOUR_MS);
      await debit(account, 1);
    }
    await alerts.evaluate(account);
    expect(await fired()).toEqual(new Set());
    // A burst: 10 credits in the last hour is over 3x the trailing rate; usage passes 50% (58 of 100).
    await debit(account, 10);
    await alerts.evaluate(account);
    expect(await fired()).toEqual(new Set([burn.id, usage.id]));
    // 42 -> 17 left: below 20% of the allowance; 83 spent of a 95 budget (>= 80%); at the burst rate, run-out < 24 h.
    await debit(account, 25);
    await alerts.evaluate(account);
    expect(await fired()).toEqual(new Set([burn.id, usage.id, below.id, bud.id, runout.id]));
    // The month's end comes near: the subscription grant expires within 3 days (time alone; the scan sees it).
    t.clock.set(period.end - 2 * DAY_MS);
    await alerts.scan();
    expect((await fired()).has(expiring.id)).toBe(true);
    expect((await fired()).has(burn.id)).toBe(false); // the burst is long past: recovered
    // Spend the rest (within the budget's remaining 12): depleted.
    await expectTallyError(debit(account, 17), "budget_exceeded");
    await budgets.update(account, budget.id, cr(200));
    await debit(account, 17);
    await alerts.evaluate(account);
    expect((await fired()).has(depleted.id)).toBe(true);
    expect((await fired()).has(bud.id)).toBe(false); // 100 of 200: below 80% again
    const triggered = await t.engine.listEvents({
      account_id: account,
      types: ["alert.triggered"],
      limit: 100,
    });
    expect(
      triggered.every((e) => (e.data.metadata as { auto_purchase?: unknown }).auto_purchase !== undefined),
    ).toBe(true);
    expect(new Set(triggered.map((e) => e.data.rule_id))).toEqual(
      new Set([burn.id, usage.id, below.id, bud.id, runout.id, expiring.id, depleted.id]),
    );
  });

  it("bad rules are refused with the field at fault; another account's rule reads as missing", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const alerts = new AlertService(t.engine);
    await expectTallyError(
      alerts.create(account, { condition: { kind: "balance_below", amount: 0n } }, "op"),
      "validation_error",
      "amount",
    );
    await expectTallyError(
      alerts.create(
        account,
        { condition: { kind: "budget_used_percent", percent: 50, budget_id: "bdg_nope" } },
        "op",
      ),
      "not_found",
      "budget_id",
    );
    const rule = await alerts.create(account, { condition: { kind: "depleted" } }, "op");
    const other = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    await expectTallyError(alerts.require(other.account, rule.id), "not_found", "rule_id");
    await alerts.remove(account, rule.id);
    expect(await alerts.list(account)).toEqual([]);
  });
});
