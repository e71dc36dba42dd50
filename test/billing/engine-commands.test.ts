/** The two ledger commands billing added: set_account_overage and reclassify_grant, on both stores. */
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

  it("reclassify_grant changes a live grant's kind and priority, moves no credits, and refunds still return to it", async () => {
    const expires = t.clock.now() + 10 * DAY;
    const { account, grants } = await fundedAccount(t.engine, [
      { kind: "subscription", amount: cr(100), expires_at: expires },
      { kind: "subscription", amount: cr(100), expires_at: expires + DAY },
    ]);
    const u = await t.engine.debit({ id: uid("u"), account_id: account, amount: cr(30), service: "x" });
    const r = await t.engine.reclassifyGrant(grants[1]!, "carryover", 10);
    expect([r.replay, r.grant.kind, r.grant.priority, r.grant.remaining]).toEqual([
      false,
      "carryover",
      10,
      cr(100),
    ]);
    expect((await t.engine.reclassifyGrant(grants[1]!, "carryover", 10)).replay).toBe(true);
    expect((await t.engine.balance(account)).by_kind).toMatchObject({
      carryover: cr(100),
      subscription: cr(70),
    });
    // It is now used first.
    const next = await t.engine.debit({ id: uid("u"), account_id: account, amount: cr(5), service: "x" });
    expect(next.usage.parts.map((p) => [p.grant_id, p.kind])).toEqual([[grants[1], "carryover"]]);
    // A refund of the earlier usage goes back to the grant it came from.
    await t.engine.refund({ usage_id: u.usage.id });
    expect((await t.engine.getGrant(grants[0]!)).remaining).toBe(cr(100));
    const events = await t.engine.listEvents({
      account_id: account,
      types: ["grant.reclassified"],
      limit: 10,
    });
    expect(events.map((e) => e.data.grant_id)).toEqual([grants[1]]);
    // Refused: an unknown grant, a voided one, bad kind or priority.
    await expectTallyError(t.engine.reclassifyGrant("grt_missing", "carryover", 10), "not_found", "grant_id");
    await t.engine.voidGrant(grants[0]!);
    await expectTallyError(
      t.engine.reclassifyGrant(grants[0]!, "carryover", 10),
      "grant_not_active",
      "grant_id",
    );
    await expectTallyError(
      t.engine.reclassifyGrant(grants[1]!, "carryover", 101),
      "validation_error",
      "priority",
    );
    await expectTallyError(
      t.engine.reclassifyGrant(grants[1]!, "bogus" as "carryover", 10),
      "validation_error",
      "kind",
    );
  });
});
