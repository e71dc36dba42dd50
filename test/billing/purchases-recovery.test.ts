import { expect, it } from "vitest";
import { grantIdForPurchase } from "../../src/billing/purchases.ts";
import { describeEachStore } from "../support/stores.ts";
import { useBillingServer } from "./harness.ts";

const C = 1_000_000n;

/** Work a crash interrupted is finished by the reconciler, exactly once. */
describeEachStore("purchases reconciliation", (kind) => {
  const t = useBillingServer(kind);

  it("a session paid before a crash (no grant yet) is fulfilled once; a later confirmation is a replay", async () => {
    const { acct } = await t.customer();
    const s = await t.purchases.createCheckout(acct, { amount_cents: 200n });
    // The crash: the transition to paid happened, nothing after it.
    expect(await t.purchases.store.markSessionPaid(s.id, "lpay_x", t.clock.now())).toBe(true);
    expect((await t.engine.balance(acct)).available).toBe(0n);
    const r = await t.purchases.reconcile();
    expect(r.fulfilled).toBeGreaterThanOrEqual(1);
    expect((await t.engine.balance(acct)).available).toBe(15_000n * C);
    expect((await t.purchases.reconcile()).fulfilled).toBe(0);
    const again = await t.purchases.payLocal(s.id, new URL(s.url!).searchParams.get("token")!);
    expect(again.replay).toBe(true);
    expect((await t.engine.balance(acct)).available).toBe(15_000n * C);
  });

  it("a charge left pending is finished (the provider call is idempotent); a refund left half-done too", async () => {
    const { acct } = await t.customer();
    const pm = (
      await t.op("POST", `/v1/accounts/${acct}/payment-methods`, {
        provider: "local",
        method_ref: "succeeds",
      })
    ).body.id;
    const method = (await t.purchases.store.getMethod(pm))!;
    const now = t.clock.now();
    const id = "pur_01recoverytest0000000000";
    await t.purchases.store.insertPurchase({
      id,
      account_id: acct,
      source: "auto_recharge",
      checkout_session_id: null,
      pack_id: null,
      amount_cents: 500n,
      currency: "USD",
      credits: 37_500n * C,
      credits_expire_at: null,
      grant_id: grantIdForPurchase(id),
      provider: "local",
      payment_method_id: method.id,
      payment_ref: null,
      status: "pending",
      failure_reason: null,
      refunded_cents: 0n,
      refunded_credits: 0n,
      refund_ref: null,
      refund_reason: null,
      created_at: now,
      paid_at: null,
      refunded_at: null,
      updated_at: now,
    });
    // Charged at the provider before the crash: the reconciler's charge must not charge again.
    await t.purchases.local.charge({
      reference: id,
      account_id: acct,
      amount_cents: 500n,
      currency: "USD",
      method,
      description: "x",
    });
    expect((await t.purchases.reconcile()).charges).toBe(0); // too recent: it may still be running
    t.clock.advance(11 * 60_000);
    expect((await t.purchases.reconcile()).charges).toBe(1);
    const p = await t.purchases.getPurchase(id);
    expect(p).toMatchObject({ status: "paid", payment_ref: "lpay_01recoverytest0000000000" });
    expect((await t.engine.balance(acct)).available).toBe(37_500n * C);
    expect((await t.purchases.store.getLocalPayment(p.payment_ref!))!.amount_cents).toBe(500n);

    // A refund claimed, then the crash.
    expect(await t.purchases.store.startRefund(id, "crash test", t.clock.now())).toBe(true);
    expect((await t.purchases.reconcile()).refunds).toBe(0);
    t.clock.advance(11 * 60_000);
    expect((await t.purchases.reconcile()).refunds).toBe(1);
    expect(await t.purchases.getPurchase(id)).toMatchObject({ status: "refunded", refunded_cents: 500n });
    expect((await t.engine.balance(acct)).available).toBe(0n);
    expect((await t.engine.audit()).ok).toBe(true);
  });

  it("one item that cannot be finished (its account closed) does not stop the others", async () => {
    const a = await t.customer();
    const b = await t.customer();
    const sa = await t.purchases.createCheckout(a.acct, { amount_cents: 100n });
    const sb = await t.purchases.createCheckout(b.acct, { amount_cents: 100n });
    await t.purchases.store.markSessionPaid(sa.id, "lpay_a", t.clock.now());
    await t.purchases.store.markSessionPaid(sb.id, "lpay_b", t.clock.now());
    await t.op("POST", `/v1/accounts/${a.acct}/close`);
    const r = await t.purchases.reconcile();
    expect(r.errors.map((e) => e.id)).toContain(sa.id);
    expect((await t.engine.balance(b.acct)).available).toBe(7_500n * C);
  });

  it("open sessions past their expiry are expired by the reconciler", async () => {
    const { acct } = await t.customer();
    const s = await t.purchases.createCheckout(acct, { amount_cents: 100n });
    t.clock.advance(25 * 3600_000);
    expect((await t.purchases.reconcile()).expired).toBeGreaterThanOrEqual(1);
    expect((await t.purchases.getSession(s.id)).status).toBe("expired");
  });
});
