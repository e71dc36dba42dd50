/** Budgets: spend caps per calendar month on an account or an API key, enforced atomically with the debit. */
import { expect, it } from "vitest";
import { BudgetService } from "../../src/budgets/service.ts";
import { calendarMonth } from "../../src/domain/analytics.ts";
import { authStoreFor } from "../../src/store/auth-store.ts";
import { describeEachStore } from "../support/stores.ts";
import { cr, expectTallyError, fundedAccount, uid, useEngine } from "../engine/harness.ts";

describeEachStore("budgets", (kind) => {
  const t = useEngine(kind);

  const account = async (credits = 1000) =>
    (await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(credits) }])).account;
  const debit = (account_id: string, credits: number, api_key_id?: string) =>
    t.engine.debit({ id: uid("u"), account_id, amount: cr(credits), service: "llm", api_key_id });

  it("refuses usage over the account's cap with budget_exceeded although credits remain; nothing changes", async () => {
    const a = await account();
    const budgets = new BudgetService(t.engine);
    const b = await budgets.create({ account_id: a, limit: cr(10), created_by: "operator" });
    await debit(a, 6);
    const before = await t.engine.balance(a);
    const err = await expectTallyError(debit(a, 5), "budget_exceeded", "amount");
    expect(err.details.budget_id).toBe(b.id);
    expect(await t.engine.balance(a)).toEqual(before);
    await debit(a, 4);
    const status = await budgets.require(a, b.id);
    expect(status.spent).toBe(cr(10));
    expect(status.remaining).toBe(0n);
    expect((await t.engine.balance(a)).available).toBe(cr(990));
  });

  it("a key's budget applies only to usage through that key; the account's to all", async () => {
    const a = await account();
    const now = t.clock.now();
    const keyId = `key_${uid("k")}`;
    await authStoreFor(t.store).insertKey({
      id: keyId,
      account_id: a,
      name: "k",
      prefix: "tly_live_x",
      secret_sha256: uid("h").padEnd(64, "0"),
      scopes: ["usage"],
      created_by: "operator",
      created_at: now,
      last_used_at: null,
      revoked_at: null,
    });
    const budgets = new BudgetService(t.engine);
    await budgets.create({ account_id: a, api_key_id: keyId, limit: cr(3), created_by: "operator" });
    await budgets.create({ account_id: a, limit: cr(8), created_by: "operator" });
    await debit(a, 3, keyId);
    await expectTallyError(debit(a, 1, keyId), "budget_exceeded");
    await debit(a, 5); // not through the key: only the account's cap (3 + 5 = 8)
    await expectTallyError(debit(a, 0.5), "budget_exceeded");
    // A key of another account cannot be named.
    const other = await account();
    await expectTallyError(
      budgets.create({ account_id: other, api_key_id: keyId, limit: cr(1), created_by: "operator" }),
      "not_found",
      "api_key_id",
    );
  });

  it("holds under concurrency: 60 concurrent debits against a cap of 25 spend exactly 25", async () => {
    const a = await account();
    const budgets = new BudgetService(t.engine);
    const b = await budgets.create({ account_id: a, limit: cr(25), created_by: "operator" });
    const results = await Promise.allSettled(Array.from({ length: 60 }, () => debit(a, 1)));
    const ok = results.filter((r) => r.status === "fulfilled").length;
    const refused = results.filter(
      (r) => r.status === "rejected" && (r.reason as { code?: string }).code === "budget_exceeded",
    ).length;
    expect(ok).toBe(25);
    expect(refused).toBe(35);
    expect((await budgets.require(a, b.id)).spent).toBe(cr(25));
    expect((await t.engine.balance(a)).available).toBe(cr(975));
  });

  it("a new calendar month starts a new cycle", async () => {
    const a = await account();
    const budgets = new BudgetService(t.engine);
    const b = await budgets.create({ account_id: a, limit: cr(2), created_by: "operator" });
    await debit(a, 2);
    await expectTallyError(debit(a, 1), "budget_exceeded");
    t.clock.set(calendarMonth(t.clock.now()).end + 1000);
    await debit(a, 2);
    const s = await budgets.require(a, b.id);
    expect(s.spent).toBe(cr(2));
    expect(s.cycle_start).toBe(calendarMonth(t.clock.now()).start);
  });

  it("a hold past the cap is refused; a capture is charged", async () => {
    const a = await account();
    const budgets = new BudgetService(t.engine);
    const b = await budgets.create({ account_id: a, limit: cr(10), created_by: "operator" });
    await expectTallyError(t.engine.hold({ account_id: a, amount: cr(11) }), "budget_exceeded");
    const { hold } = await t.engine.hold({ account_id: a, amount: cr(6) });
    await t.engine.capture({ hold_id: hold.id, amount: cr(7), service: "voice" });
    expect((await budgets.require(a, b.id)).spent).toBe(cr(7));
    await expectTallyError(debit(a, 4), "budget_exceeded");
  });

  it("bad input changes nothing: zero limit, unknown account, another account's budget", async () => {
    const a = await account();
    const budgets = new BudgetService(t.engine);
    await expectTallyError(
      budgets.create({ account_id: a, limit: 0n, created_by: "operator" }),
      "validation_error",
      "limit",
    );
    await expectTallyError(
      budgets.create({ account_id: "acct_missing", limit: cr(1), created_by: "operator" }),
      "not_found",
    );
    const b = await budgets.create({ account_id: a, limit: cr(1), created_by: "operator" });
    const other = await account();
    expect(await budgets.get(other, b.id)).toBeNull();
    await expectTallyError(budgets.remove(other, b.id), "not_found", "budget_id");
    expect(await budgets.list(a)).toHaveLength(1);
    await budgets.remove(a, b.id);
    expect(await budgets.list(a)).toHaveLength(0);
    await debit(a, 5);
  });
});
