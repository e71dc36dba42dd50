/**
 * Plans and cycles on both stores, with the seeds' scenarios (004: the image API's monthly supply, packs
 * and plan changes; 001: the voice receptionist's allowance, per-minute rate and charged overage).
 */
import { describe, expect, it } from "vitest";
import { allowanceGrantId, Subscriptions } from "../../src/billing/subscriptions.ts";
import { periodStart } from "../../src/domain/cycles.ts";
import {
  cr,
  DAY,
  expectTallyError,
  HOUR,
  MINUTE,
  newAccount,
  uid,
  withFreshEngine,
} from "../engine/harness.ts";
import { describeEachStore } from "../support/stores.ts";
import { billing, expectReconciles, grantsOf, periodsOf, plan } from "./support.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

describeEachStore("subscriptions and cycles", (kind) => {
  it("seed 004: a Business plan bought on April 15 renews on the 15th; unused monthly credits expire; packs are used only after the monthly supply and never expire", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      const april15 = Date.UTC(2031, 3, 15, 10);
      c.clock.set(april15);
      await plan(c, { id: "business", monthly_allowance: "1000", price: "99" });
      const acct = await newAccount(c.engine);
      const { subscription: sub } = await c.subs.subscribe({ account_id: acct, plan_id: "business" });
      expect(iso(sub.period_start)).toBe("2031-04-15T10:00:00.000Z");
      expect(iso(sub.period_end)).toBe("2031-05-15T10:00:00.000Z");
      expect((await c.engine.balance(acct)).by_kind.subscription).toBe(cr(1000));

      // A pack bought meanwhile (purchase grant, no expiry).
      c.clock.advance(2 * DAY);
      await c.engine.grant({ account_id: acct, kind: "purchase", amount: cr(2000) });
      // Usage takes the monthly supply first.
      const u1 = await c.engine.debit({
        id: uid("use"),
        account_id: acct,
        amount: cr(700),
        service: "image",
      });
      expect(u1.usage.parts.map((p) => p.kind)).toEqual(["subscription"]);
      // Past the monthly supply, the pack takes over.
      const u2 = await c.engine.debit({
        id: uid("use"),
        account_id: acct,
        amount: cr(500),
        service: "image",
      });
      expect(u2.usage.parts.map((p) => [p.kind, p.amount])).toEqual([
        ["subscription", cr(300)],
        ["purchase", cr(200)],
      ]);

      // May 15: restored; the monthly supply is used again before the pack.
      c.clock.set(Date.UTC(2031, 4, 15, 10));
      await c.subs.renewAccount(acct);
      const b = await c.engine.balance(acct);
      expect(b.by_kind.subscription).toBe(cr(1000));
      expect(b.by_kind.purchase).toBe(cr(1800));
      const u3 = await c.engine.debit({
        id: uid("use"),
        account_id: acct,
        amount: cr(100),
        service: "image",
      });
      expect(u3.usage.parts.map((p) => p.kind)).toEqual(["subscription"]);

      // June 15: 900 unused monthly credits expire (no rollover); the pack stays whole.
      c.clock.set(Date.UTC(2031, 5, 15, 10));
      await c.subs.renewAccount(acct);
      await c.engine.sweep();
      const subs = await grantsOf(c.engine, acct, "subscription");
      expect(subs.map((g) => [iso(g.effective_at), iso(g.expires_at), g.status])).toEqual([
        ["2031-04-15T10:00:00.000Z", "2031-05-15T10:00:00.000Z", "expired"],
        ["2031-05-15T10:00:00.000Z", "2031-06-15T10:00:00.000Z", "expired"],
        ["2031-06-15T10:00:00.000Z", "2031-07-15T10:00:00.000Z", "active"],
      ]);
      const may = await expectReconciles(c, acct, Date.UTC(2031, 4, 15, 10));
      expect(may.expired).toBe(cr(900));
      expect(may.granted.subscription).toBe(cr(1000));
      expect((await c.engine.balance(acct)).by_kind.purchase).toBe(cr(1800));
      // A year later, the pack is still there.
      c.clock.set(Date.UTC(2032, 5, 20));
      await c.subs.renewAccount(acct);
      expect((await c.engine.balance(acct)).by_kind.purchase).toBe(cr(1800));
      expect((await c.engine.audit()).ok).toBe(true);
    });
  });

  it("seed 004: upgrade in mid-period: the new allowance at once, the old supply used first until the old period ends, then expires; packs after both", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      c.clock.set(Date.UTC(2031, 0, 10));
      await plan(c, { id: "starter", monthly_allowance: "100" });
      await plan(c, { id: "pro", monthly_allowance: "500" });
      const acct = await newAccount(c.engine);
      const { subscription: sub } = await c.subs.subscribe({ account_id: acct, plan_id: "starter" });
      await c.engine.grant({ account_id: acct, kind: "purchase", amount: cr(50) });
      const early = await c.engine.debit({
        id: uid("use"),
        account_id: acct,
        amount: cr(40),
        service: "image",
      });

      // January 20: upgrade. 60 starter credits stay until February 10 as a carryover.
      const change = Date.UTC(2031, 0, 20);
      c.clock.set(change);
      const changed = await c.subs.change(sub.id, "pro");
      expect(changed.plan_id).toBe("pro");
      expect(iso(changed.period_start)).toBe("2031-01-20T00:00:00.000Z");
      expect(iso(changed.period_end)).toBe("2031-02-20T00:00:00.000Z");
      const b = await c.engine.balance(acct);
      expect(b.by_kind).toMatchObject({ carryover: cr(60), subscription: cr(500), purchase: cr(50) });
      const carry = await c.engine.getGrant(allowanceGrantId(sub.id, 0, 0));
      expect([carry.kind, carry.priority, carry.remaining, iso(carry.expires_at)]).toEqual([
        "carryover",
        10,
        cr(60),
        "2031-02-10T00:00:00.000Z",
      ]);
      // Old supply first, then the new plan's, then the pack.
      const u = await c.engine.debit({ id: uid("use"), account_id: acct, amount: cr(70), service: "image" });
      expect(u.usage.parts.map((p) => [p.kind, p.amount])).toEqual([
        ["carryover", cr(60)],
        ["subscription", cr(10)],
      ]);
      // A refund of a usage from before the change returns to the old supply, spendable until it expires.
      await c.engine.refund({ usage_id: early.usage.id, amount: cr(15) });
      expect((await c.engine.balance(acct)).by_kind).toMatchObject({
        carryover: cr(15),
        subscription: cr(490),
      });

      // A second account: the old supply left unused expires at the old period's end.
      const acct2 = await newAccount(c.engine);
      c.clock.set(Date.UTC(2031, 0, 21));
      const s2 = (
        await c.subs.subscribe({ account_id: acct2, plan_id: "starter", anchor_at: Date.UTC(2031, 0, 10) })
      ).subscription;
      await c.subs.change(s2.id, "pro");
      await c.engine.grant({ account_id: acct2, kind: "purchase", amount: cr(5) });
      c.clock.set(Date.UTC(2031, 1, 10));
      await c.engine.sweep();
      const b2 = await c.engine.balance(acct2);
      expect(b2.by_kind).toMatchObject({ carryover: 0n, subscription: cr(500), purchase: cr(5) });
      const g = await c.engine.getGrant(allowanceGrantId(s2.id, 0, 0));
      expect(g.status).toBe("expired");
      // The cycles: January 10 – January 21 on starter (ended by the change), then pro from the change.
      const periods = await periodsOf(c, acct2);
      expect(periods.map((p) => [p.plan_id, iso(p.start_at), iso(p.end_at)])).toEqual([
        ["starter", "2031-01-10T00:00:00.000Z", "2031-01-21T00:00:00.000Z"],
        ["pro", "2031-01-21T00:00:00.000Z", "2031-02-21T00:00:00.000Z"],
      ]);
      await expectReconciles(c, acct2, Date.UTC(2031, 0, 10));
      expect((await c.engine.audit()).ok).toBe(true);
    });
  });

  it("an anchor on the 31st across two years: every renewal date and grant expiry exact, each period granted once", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      const anchor = Date.UTC(2031, 0, 31, 12);
      c.clock.set(anchor);
      await plan(c, { id: "monthly", monthly_allowance: "10" });
      const acct = await newAccount(c.engine);
      await c.subs.subscribe({ account_id: acct, plan_id: "monthly" });
      for (let i = 1; i <= 24; i++) {
        // Renewed a few minutes late sometimes, exactly on time other times: the dates never drift.
        c.clock.set(periodStart(anchor, i) + (i % 3) * MINUTE);
        await c.subs.renewAccount(acct);
        await c.subs.renewAccount(acct);
      }
      const grants = await grantsOf(c.engine, acct, "subscription");
      expect(grants).toHaveLength(25);
      const days = grants.map((g) => iso(g.expires_at)!.slice(0, 10));
      expect(days.slice(0, 13)).toEqual([
        "2031-02-28",
        "2031-03-31",
        "2031-04-30",
        "2031-05-31",
        "2031-06-30",
        "2031-07-31",
        "2031-08-31",
        "2031-09-30",
        "2031-10-31",
        "2031-11-30",
        "2031-12-31",
        "2032-01-31",
        "2032-02-29",
      ]);
      expect(days.at(-1)).toBe("2033-02-28");
      grants.forEach((g, i) => {
        expect(g.effective_at).toBe(periodStart(anchor, i));
        expect(g.expires_at).toBe(periodStart(anchor, i + 1));
        expect(new Date(g.expires_at!).getUTCHours()).toBe(12);
      });
      expect(new Set(grants.map((g) => g.id)).size).toBe(25);
    });
  });

  it("seed 001: a voice receptionist plan: monthly allowance, per-minute rate, overage allowed and charged on the statement", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      const start = Date.UTC(2031, 2, 1);
      c.clock.set(start);
      // 500 minutes a month at 1 credit a minute; beyond it, $0.12 a minute, up to 1,000 minutes.
      await plan(c, {
        id: "receptionist",
        monthly_allowance: "500",
        price: "49",
        overage_policy: "allow",
        overage_rate: "0.12",
        overage_limit: "1000",
      });
      const acct = await newAccount(c.engine);
      await c.subs.subscribe({ account_id: acct, plan_id: "receptionist" });
      const account = await c.engine.getAccount(acct);
      expect([account.overage_policy, account.overage_limit]).toEqual(["allow", cr(1000)]);
      // 530.5 minutes of calls in the month: 30.5 minutes of overage.
      for (let i = 0; i < 10; i++) {
        c.clock.advance(2 * DAY);
        await c.engine.debit({ id: uid("call"), account_id: acct, amount: cr(53.05), service: "voice_call" });
      }
      // A usage refund of one call (3 minutes): overage first.
      const call = await c.engine.debit({
        id: uid("call"),
        account_id: acct,
        amount: cr(3),
        service: "voice_call",
      });
      await c.engine.refund({ usage_id: call.usage.id });
      // Past the overage limit, usage is refused.
      await expectTallyError(
        c.engine.debit({ id: uid("call"), account_id: acct, amount: cr(1000), service: "voice_call" }),
        "insufficient_credits",
      );
      c.clock.set(Date.UTC(2031, 3, 1, 1));
      await c.subs.renewAccount(acct);
      const s = await expectReconciles(c, acct, start);
      expect(s.used_total).toBe(cr(533.5));
      expect(s.usage).toEqual([{ service: "voice_call", credits: cr(533.5), count: 11 }]);
      expect(s.overage).toBe(cr(33.5));
      expect(s.refunded_overage).toBe(cr(3));
      expect(s.overage_billable).toBe(cr(30.5));
      // 30.5 × $0.12 = $3.66
      expect(s.overage_charge_cents).toBe(366n);
      expect(s.currency).toBe("USD");
      expect(s.closing_balance).toBe(0n);
    });
  });

  it("rollover: unused allowance up to the cap carries into the next period; the rest expires", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      const start = Date.UTC(2031, 5, 1);
      c.clock.set(start);
      await plan(c, { id: "roll", monthly_allowance: "100", rollover_cap: "30" });
      const acct = await newAccount(c.engine);
      await c.subs.subscribe({ account_id: acct, plan_id: "roll" });
      await c.engine.debit({ id: uid("use"), account_id: acct, amount: cr(90), service: "x" });
      c.clock.set(Date.UTC(2031, 6, 1));
      await c.subs.renewAccount(acct);
      expect((await c.engine.balance(acct)).by_kind).toMatchObject({
        carryover: cr(10),
        subscription: cr(100),
      });
      // Nothing used in July: 110 unused, 30 carry.
      c.clock.set(Date.UTC(2031, 7, 1));
      await c.subs.renewAccount(acct);
      await c.subs.renewAccount(acct);
      await c.engine.sweep();
      expect((await c.engine.balance(acct)).by_kind).toMatchObject({
        carryover: cr(30),
        subscription: cr(100),
      });
      const july = await expectReconciles(c, acct, Date.UTC(2031, 6, 1));
      expect(july.expired).toBe(cr(110));
      expect(july.granted).toMatchObject({ subscription: cr(100), carryover: cr(10) });
    });
  });

  it("downgrade at period end, cancel at period end, free plans and overage policies follow the plan", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      c.clock.set(Date.UTC(2031, 0, 5));
      await plan(c, { id: "big", monthly_allowance: "1000", overage_policy: "allow" });
      await plan(c, { id: "free", monthly_allowance: "50" });
      const acct = await newAccount(c.engine);
      const { subscription: sub } = await c.subs.subscribe({ account_id: acct, plan_id: "big" });
      const pending = await c.subs.change(sub.id, "free", "period_end");
      expect([pending.plan_id, pending.pending_plan_id]).toEqual(["big", "free"]);
      expect((await c.engine.balance(acct)).by_kind.subscription).toBe(cr(1000));
      c.clock.set(Date.UTC(2031, 1, 5));
      const after = (await c.subs.renewAccount(acct))!;
      expect([after.plan_id, after.pending_plan_id, iso(after.period_start)]).toEqual([
        "free",
        null,
        "2031-02-05T00:00:00.000Z",
      ]);
      expect((await c.engine.balance(acct)).by_kind.subscription).toBe(cr(50));
      expect((await c.engine.getAccount(acct)).overage_policy).toBe("block");
      // Cancel at period end: this period stays, nothing after.
      const canceled = await c.subs.cancel(sub.id);
      expect(canceled.cancel_at_period_end).toBe(true);
      c.clock.set(Date.UTC(2031, 2, 5));
      const ended = await c.subs.renew(sub.id);
      expect([ended.status, iso(ended.canceled_at)]).toEqual(["canceled", "2031-03-05T00:00:00.000Z"]);
      expect(await grantsOf(c.engine, acct, "subscription")).toHaveLength(2);
      const types = (await c.engine.listEvents({ account_id: acct, limit: 100 }))
        .map((ev) => ev.type)
        .filter((t) => t.startsWith("subscription."));
      expect(types).toEqual([
        "subscription.created",
        "subscription.renewed",
        "subscription.change_scheduled",
        "subscription.changed",
        "subscription.renewed",
        "subscription.canceled",
        "subscription.ended",
      ]);
      await expectTallyError(c.subs.change(sub.id, "big"), "subscription_conflict");
      // A new subscription is possible once the old one ended; only one active at a time.
      const again = await c.subs.subscribe({ account_id: acct, plan_id: "free" });
      await expectTallyError(
        c.subs.subscribe({ account_id: acct, plan_id: "big" }),
        "subscription_conflict",
        "account_id",
      );
      expect(again.subscription.status).toBe("active");
      // Closing the account ends its subscription at the next renewal instead of leaving it due forever.
      await c.engine.closeAccount(acct);
      c.clock.set(Date.UTC(2031, 3, 5));
      expect(await c.subs.renewDue()).toBe(1);
      expect((await c.subs.get(again.subscription.id)).status).toBe("canceled");
    });
  });

  it("renewal runs exactly once however many callers race for it; a scheduler pass and lazy reads agree", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      const anchor = Date.UTC(2031, 0, 1);
      c.clock.set(anchor);
      await plan(c, { id: "p", monthly_allowance: "10", rollover_cap: "5" });
      const accounts: string[] = [];
      for (let i = 0; i < 5; i++) {
        const a = await newAccount(c.engine);
        accounts.push(a);
        await c.subs.subscribe({ account_id: a, plan_id: "p" });
      }
      const other = billing(e); // a second service instance: another "process" on the same store
      for (let m = 1; m <= 6; m++) {
        c.clock.set(periodStart(anchor, m));
        await Promise.all([
          c.subs.renewDue(),
          other.subs.renewDue(),
          ...accounts.flatMap((a) => [c.subs.renewAccount(a), other.subs.renewAccount(a)]),
        ]);
      }
      for (const a of accounts) {
        const g = await grantsOf(c.engine, a, "subscription");
        expect(g).toHaveLength(7);
        // One subscription.renewed per period, exactly like the grants.
        const renewed = await c.engine.listEvents({
          account_id: a,
          types: ["subscription.renewed"],
          limit: 100,
        });
        expect(renewed.map((ev) => ev.data.period_index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
        const carry = await grantsOf(c.engine, a, "carryover");
        expect(carry.map((x) => x.amount)).toEqual(Array(6).fill(cr(5)));
      }
      expect((await c.engine.audit()).ok).toBe(true);
    });
  });

  it("a plan edit applies from each subscription's next period; periods already granted keep what they got", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      c.clock.set(Date.UTC(2031, 4, 20));
      await plan(c, { id: "edit", monthly_allowance: "100" });
      const acct = await newAccount(c.engine);
      await c.subs.subscribe({ account_id: acct, plan_id: "edit" });
      c.clock.advance(DAY);
      const edited = await c.plans.update("edit", { monthly_allowance: "150", name: "Edited" });
      expect([edited.monthly_allowance, edited.name, edited.created_at]).toEqual([
        cr(150),
        "Edited",
        Date.UTC(2031, 4, 20),
      ]);
      // A renewal of the current period again (a replay) does not conflict with the edit.
      await c.subs.renewAccount(acct);
      expect((await c.engine.balance(acct)).by_kind.subscription).toBe(cr(100));
      c.clock.set(Date.UTC(2031, 5, 20));
      const before = (await c.subs.db.activeSubscriptionOf(acct))!;
      await c.subs.renewAccount(acct);
      expect((await c.engine.balance(acct)).by_kind.subscription).toBe(cr(150));
      // A renewer that crashed after the grant but before saving the subscription, and a plan edited
      // before the retry: the retry finds the period's grant (a conflict, not a second grant) and moves on.
      expect(await c.subs.db.lockSubscription(before.id, "crashed", Date.now() + 60_000, Date.now())).toBe(
        true,
      );
      expect(await c.subs.db.saveSubscription(before, "crashed")).toBe(true);
      await c.subs.db.unlockSubscription(before.id, "crashed");
      await c.plans.update("edit", { monthly_allowance: "200" });
      const retried = (await c.subs.renewAccount(acct))!;
      expect(retried.next_index).toBe(2);
      expect((await c.engine.balance(acct)).by_kind.subscription).toBe(cr(150));
      expect(await grantsOf(c.engine, acct, "subscription")).toHaveLength(2);
    });
  });

  it("a subscription's lock: a live holder makes others wait (then give up), a dead holder's expires", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      const anchor = Date.UTC(2031, 6, 1);
      c.clock.set(anchor);
      await plan(c, { id: "lk", monthly_allowance: "10" });
      const acct = await newAccount(c.engine);
      const { subscription: sub } = await c.subs.subscribe({ account_id: acct, plan_id: "lk" });
      const impatient = new Subscriptions(c.engine, { lockWaitMs: 200 });
      c.clock.set(periodStart(anchor, 1));
      expect(await c.subs.db.lockSubscription(sub.id, "alive", Date.now() + 60_000, Date.now())).toBe(true);
      await expectTallyError(impatient.renew(sub.id), "subscription_conflict", "subscription_id");
      expect(await grantsOf(c.engine, acct, "subscription")).toHaveLength(1);
      // The holder died: its lock ran out; the next renewal takes it over.
      expect(await c.subs.db.lockSubscription(sub.id, "alive", Date.now() - 1, Date.now())).toBe(true);
      expect((await impatient.renew(sub.id)).next_index).toBe(2);
      expect(await grantsOf(c.engine, acct, "subscription")).toHaveLength(2);
    });
  });

  it("bad input is refused with the field at fault and changes nothing", async () => {
    await withFreshEngine(kind, async (e) => {
      const c = billing(e);
      await expectTallyError(
        c.plans.create({ id: "x", name: "x", monthly_allowance: "-1" }),
        "validation_error",
        "monthly_allowance",
      );
      await expectTallyError(
        c.plans.create({ id: "x", name: "x", monthly_allowance: "1", overage_limit: "5" }),
        "validation_error",
        "overage_limit",
      );
      await expectTallyError(
        c.plans.create({ id: "x", name: "x", monthly_allowance: "1", overage_rate: "0.1234567" }),
        "validation_error",
        "overage_rate",
      );
      expect(await c.plans.list(true)).toEqual([]);
      await plan(c, { id: "ok", monthly_allowance: "1" });
      await expectTallyError(
        c.plans.create({ id: "ok", name: "other", monthly_allowance: "2" }),
        "idempotency_conflict",
        "id",
      );
      const acct = await newAccount(c.engine);
      await expectTallyError(c.subs.subscribe({ account_id: acct, plan_id: "nope" }), "not_found", "plan_id");
      await expectTallyError(
        c.subs.subscribe({ account_id: "acct_missing", plan_id: "ok" }),
        "not_found",
        "account_id",
      );
      await expectTallyError(
        c.subs.subscribe({ account_id: acct, plan_id: "ok", anchor_at: c.clock.now() + 400 * DAY }),
        "validation_error",
        "anchor_at",
      );
      await c.plans.archive("ok");
      await expectTallyError(
        c.subs.subscribe({ account_id: acct, plan_id: "ok" }),
        "validation_error",
        "plan_id",
      );
      expect(await c.subs.db.activeSubscriptionOf(acct)).toBeNull();
      expect(await c.engine.listGrants(acct)).toEqual([]);
      void HOUR;
    });
  });
});

describe("cycle ids", () => {
  it("derived grant ids are valid ids whatever the subscription id", () => {
    expect(allowanceGrantId("sub_" + "x".repeat(124), 99, 1199)).toMatch(/^[A-Za-z0-9_\-.:]{1,128}$/);
  });
});
