/** The two ledger commands billing added: set_account_overage and convert_grant, on both stores. */
import { expect, it } from "vitest";
import { cr, DAY, expectTallyError, fundedAccount, newAccount, uid, useEngine } from "../engine/harness.ts";
import { describeEachStore } from "../support/stores.ts";

describeEachStore("billing's ledger commands", (kind) => {
  const t = useEngine(kind);

  it("set_account_overage sets policy and limit; the same again is a replay; a limit needs allow", async () => {
    const acct = await newAccount(t.engine);
    const r = await t.engine.setAccountOverage(acct, "allow", cr(10));
    expect([r.replay, r.account.overage_policy, r.account.overage_limit]).toEqual([false, "allow", cr(10)]);
    expect((await t.engine.setAccountOverage(acct, "allow", cr(10))).replay).toBe(true);
    expect((await t.engine.getAccount(acct)).overage_limit).toBe(cr(10));
    // The stored policy is the one debits use.
    const u = await t.engine.debit({ id: uid("u"), account_id: acct, amount: cr(4), service: "x" });
    expect(u.usage.overage).toBe(cr(4));
    await expectTallyError(
      t.engine.setAccountOverage(acct, "block", cr(1)),
      "validation_error",
      "overage_limit",
    );
    await expectTallyError(
      t.engine.setAccountOverage(acct, "allow", -1n),
      "validation_error",
      "overage_limit",
    );
    await expectTallyError(t.engine.setAccountOverage("acct_nope", "block", null), "not_found", "account_id");
    expect((await t.engine.getAccount(acct)).overage_limit).toBe(cr(10));
  });

  it("convert_grant turns a grant's remainder into a new grant atomically, once", async () => {
    const expires = t.clock.now() + 10 * DAY;
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(100), expires_at: expires },
    ]);
    await t.engine.debit({ id: uid("u"), account_id: account, amount: cr(30), service: "x" });
    const into = { id: uid("grt"), kind: "carryover" as const, expires_at: expires, source: "plan_change" };
    const r = (await t.engine.convertGrant(grants[0]!, into))!;
    expect([
      r.replay,
      r.grant.kind,
      r.grant.amount,
      r.grant.priority,
      r.grant.metadata.converted_from,
    ]).toEqual([false, "carryover", cr(70), 10, grants[0]]);
    const old = await t.engine.getGrant(grants[0]!);
    expect([old.status, old.remaining]).toEqual(["voided", 0n]);
    expect((await t.engine.balance(account)).available).toBe(cr(70));
    // Again: a replay, nothing moves.
    expect((await t.engine.convertGrant(grants[0]!, into))!.replay).toBe(true);
    expect((await t.engine.balance(account)).available).toBe(cr(70));
    // Nothing left to convert: null, nothing created.
    const { grants: spent } = await fundedAccount(t.engine, [{ kind: "subscription", amount: cr(1) }]);
    await t.engine.voidGrant(spent[0]!);
    expect(await t.engine.convertGrant(spent[0]!, { id: uid("grt"), kind: "carryover" })).toBeNull();
    await expectTallyError(
      t.engine.convertGrant("grt_missing", { id: uid("grt"), kind: "carryover" }),
      "not_found",
    );
    await expectTallyError(
      t.engine.convertGrant(grants[0]!, { id: "bad id!", kind: "carryover" }),
      "validation_error",
      "id",
    );
  });
});
