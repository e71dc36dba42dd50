/** Operator adjustments, usage refunds across cycles, and the signup grant, on both stores. */
import { expect, it } from "vitest";
import { adjust, listAdjustments } from "../../src/billing/adjustments.ts";
import { applySignupGrant, saveSignupGrant, signupGrantId } from "../../src/billing/signup.ts";
import { cr, DAY, expectTallyError, newAccount, uid, withFreshEngine } from "../engine/harness.ts";
import { describeEachStore } from "../support/stores.ts";
import { billing, expectReconciles, plan } from "./support.ts";

describeEachStore("adjustments, refunds and the signup grant", (kind) => {
  it("adjustments add or remove credits, need a reason, are idempotent by id, appear in the history and statements", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      const start = Date.UTC(2031, 0, 1);
      c.clock.set(start);
      await plan(c, { id: "p", monthly_allowance: "100", overage_policy: "allow" });
      const acct = await newAccount(c.engine);
      await c.subs.subscribe({ account_id: acct, plan_id: "p" });

      await expectTallyError(
        adjust(c.engine, { account_id: acct, amount: cr(5), reason: " " }),
        "validation_error",
        "reason",
      );
      await expectTallyError(
        adjust(c.engine, { account_id: acct, amount: 0n, reason: "x" }),
        "validation_error",
        "amount",
      );
      const added = await adjust(c.engine, {
        id: "adj_goodwill",
        account_id: acct,
        amount: cr(25),
        reason: "outage credit",
      });
      expect([added.direction, added.amount, added.replay]).toEqual(["add", cr(25), false]);
      const again = await adjust(c.engine, {
        id: "adj_goodwill",
        account_id: acct,
        amount: cr(25),
        reason: "outage credit",
      });
      expect(again.replay).toBe(true);
      await expectTallyError(
        adjust(c.engine, { id: "adj_goodwill", account_id: acct, amount: cr(26), reason: "outage credit" }),
        "idempotency_conflict",
      );
      c.clock.advance(DAY);
      const removed = await adjust(c.engine, {
        id: "adj_fix",
        account_id: acct,
        amount: -cr(40),
        reason: "double grant",
      });
      expect([removed.direction, removed.amount]).toEqual(["remove", cr(40)]);
      expect(
        (await adjust(c.engine, { id: "adj_fix", account_id: acct, amount: -cr(40), reason: "double grant" }))
          .replay,
      ).toBe(true);
      expect((await c.engine.balance(acct)).available).toBe(cr(85));
      // A removal never overdraws, even under overage policy allow.
      await expectTallyError(
        adjust(c.engine, { account_id: acct, amount: -cr(86), reason: "too much" }),
        "insufficient_credits",
      );
      expect((await c.engine.balance(acct)).available).toBe(cr(85));
      expect((await c.engine.getAccount(acct)).overage_balance).toBe(0n);

      const events = await c.engine.listEvents({
        account_id: acct,
        types: ["adjustment.created"],
        limit: 10,
      });
      expect(
        events.map((ev) => [ev.data.adjustment_id, ev.data.direction, ev.data.amount, ev.data.reason]),
      ).toEqual([
        ["adj_goodwill", "add", "25", "outage credit"],
        ["adj_fix", "remove", "40", "double grant"],
      ]);
      const list = await listAdjustments(c.engine, acct);
      expect(list.map((a) => [a.id, a.direction, a.amount, a.reason])).toEqual([
        ["adj_fix", "remove", cr(40), "double grant"],
        ["adj_goodwill", "add", cr(25), "outage credit"],
      ]);
      c.clock.set(Date.UTC(2031, 1, 1));
      await c.subs.renewAccount(acct);
      const s = await expectReconciles(c, acct, start);
      expect(s.granted.adjustment).toBe(cr(25));
      expect(s.removed).toBe(cr(40));
      expect(s.usage).toEqual([]);
      expect((await c.engine.audit()).ok).toBe(true);
    });
  });

  it("a usage refund returns credits to the grants they came from; credits of a grant expired meanwhile expire again at once", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      const start = Date.UTC(2031, 2, 10);
      c.clock.set(start);
      await plan(c, { id: "p", monthly_allowance: "100" });
      const acct = await newAccount(c.engine);
      await c.subs.subscribe({ account_id: acct, plan_id: "p" });
      await c.engine.grant({ account_id: acct, kind: "purchase", amount: cr(50) });
      const u = await c.engine.debit({ id: uid("use"), account_id: acct, amount: cr(120), service: "stt" });
      expect(u.usage.parts.map((p) => [p.kind, p.amount])).toEqual([
        ["subscription", cr(100)],
        ["purchase", cr(20)],
      ]);
      // Partial refund: the pack's part comes back first (reverse burn-down).
      await c.engine.refund({ usage_id: u.usage.id, amount: cr(30) });
      let b = await c.engine.balance(acct);
      expect(b.by_kind).toMatchObject({ subscription: cr(10), purchase: cr(50) });
      // Next cycle: the March grant has expired; refunding the rest returns nothing spendable from it.
      c.clock.set(Date.UTC(2031, 3, 10));
      await c.subs.renewAccount(acct);
      const before = (await c.engine.balance(acct)).available;
      await c.engine.refund({ usage_id: u.usage.id });
      b = await c.engine.balance(acct);
      expect(b.available).toBe(before);
      expect(b.by_kind).toMatchObject({ subscription: cr(100), purchase: cr(50) });
      const april = await expectReconciles(c, acct, Date.UTC(2031, 3, 10), Date.UTC(2031, 3, 11));
      // The 90 refunded to the expired grant are refunded and expired again in the same cycle.
      expect(april.refunded).toBe(cr(90));
      expect(april.expired).toBe(cr(90));
      expect((await c.engine.audit()).ok).toBe(true);
    });
  });

  it("the signup grant: once per new account, promotional, expiring; off by default; never for older accounts", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      const before = await c.engine.getAccount(await newAccount(c.engine));
      await applySignupGrant(c.engine, before);
      expect(await c.engine.listGrants(before.id)).toEqual([]);
      c.clock.advance(1000);
      await saveSignupGrant(c.store, { amount: cr(500), expires_in_days: 30 }, c.clock.now());
      await applySignupGrant(c.engine, before);
      expect(await c.engine.listGrants(before.id)).toEqual([]);
      c.clock.advance(1000);
      const acct = await c.engine.getAccount(await newAccount(c.engine));
      await Promise.all([applySignupGrant(c.engine, acct), applySignupGrant(c.engine, acct)]);
      const grants = await c.engine.listGrants(acct.id);
      expect(grants.map((g) => [g.id, g.kind, g.amount, g.expires_at])).toEqual([
        [signupGrantId(acct.id), "promotional", cr(500), acct.created_at + 30 * DAY],
      ]);
      await expectTallyError(
        saveSignupGrant(c.store, { amount: cr(1), expires_in_days: 0 }, c.clock.now()),
        "validation_error",
        "expires_in_days",
      );
    });
  });
});
