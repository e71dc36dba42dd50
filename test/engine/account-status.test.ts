import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { cr, expectTallyError, fundedAccount, uid, useEngine } from "./harness.ts";

describeEachStore("account status: suspend, reactivate, close", (kind) => {
  const t = useEngine(kind);

  it("a suspended account takes no usage or holds but keeps its credits, and can be reactivated", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(10) }]);
    const hold = await t.engine.hold({ account_id: account, amount: cr(2) });
    expect((await t.engine.suspendAccount(account)).account.status).toBe("suspended");
    expect((await t.engine.suspendAccount(account)).replay).toBe(true);
    await expectTallyError(
      t.engine.debit({ id: uid("u"), account_id: account, amount: cr(1), service: "x" }),
      "account_not_active",
      "account_id",
    );
    await expectTallyError(
      t.engine.hold({ account_id: account, amount: cr(1) }),
      "account_not_active",
      "account_id",
    );
    // Work already started may finish: the hold can still be captured.
    await t.engine.capture({ hold_id: hold.hold.id, amount: cr(1), service: "x" });
    // Grants are still allowed (a purchase may land while suspended).
    await t.engine.grant({ account_id: account, kind: "promotional", amount: cr(1) });
    expect((await t.engine.balance(account)).available).toBe(cr(10));
    expect((await t.engine.reactivateAccount(account)).account.status).toBe("active");
    await t.engine.debit({ id: uid("u"), account_id: account, amount: cr(1), service: "x" });
    expect((await t.engine.balance(account)).available).toBe(cr(9));
  });

  it("a closed account is final: no grants, usage or holds; it cannot be reopened", async () => {
    const { account } = await fundedAccount(t.engine, [{ kind: "purchase", amount: cr(5) }]);
    expect((await t.engine.closeAccount(account)).account.status).toBe("closed");
    await expectTallyError(
      t.engine.grant({ account_id: account, kind: "purchase", amount: cr(1) }),
      "account_not_active",
      "account_id",
    );
    await expectTallyError(
      t.engine.debit({ id: uid("u"), account_id: account, amount: cr(1), service: "x" }),
      "account_not_active",
      "account_id",
    );
    await expectTallyError(t.engine.reactivateAccount(account), "account_not_active", "account_id");
    await expectTallyError(t.engine.suspendAccount(account), "account_not_active", "account_id");
    expect((await t.engine.getAccount(account)).status).toBe("closed");
    expect((await t.engine.balance(account)).available).toBe(cr(5));
    await expectTallyError(t.engine.closeAccount("acct_missing"), "not_found", "account_id");
    expect((await t.engine.audit()).ok).toBe(true);
  });
});
