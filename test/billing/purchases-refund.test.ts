import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { submitCheckout, useBillingServer } from "./harness.ts";

const C = 1_000_000n;

describeEachStore("purchase refunds", (kind) => {
  const t = useBillingServer(kind);

  /** A paid $10 purchase (75,000 credits) through the local checkout page. */
  async function bought(amount_usd = 10) {
    const { acct, secret } = await t.customer();
    const cs = await t.as(secret, "POST", "/api/v1/credits/payg/create-checkout-session", { amount_usd });
    await submitCheckout(t.base, cs.body.checkout_url, "pay");
    const [p] = (await t.op("GET", `/v1/purchases?account_id=${acct}`)).body.data;
    return { acct, secret, purchase: p as { id: string; grant_id: string } };
  }

  it("removes what is left of the purchase and refunds the matching money through the provider, once", async () => {
    const { acct, secret, purchase } = await bought(10);
    // A quarter used: 18,750 of 75,000 credits.
    await t.engine.debit({
      id: `${acct}-u`,
      account_id: acct,
      amount: 18_750n * C,
      service: "transcription",
    });
    const answers = await Promise.all(
      Array.from({ length: 5 }, () =>
        t.op("POST", `/v1/purchases/${purchase.id}/refund`, { reason: "duplicate order" }),
      ),
    );
    expect(answers.map((a) => [a.status, a.status === 200 ? "" : JSON.stringify(a.body)])).toEqual(
      Array(5).fill([200, ""]),
    );
    for (const a of answers)
      expect(a.body).toMatchObject({
        status: "refunded",
        refunded_usd: 7.5,
        refunded_credits: "56250",
        refund_reason: "duplicate order",
      });
    expect((await t.engine.balance(acct)).available).toBe(0n);
    const g = await t.engine.getGrant(purchase.grant_id);
    expect(g).toMatchObject({ status: "voided", remaining: 0n });
    // The local provider recorded one refund of $7.50 against the payment.
    const p = await t.purchases.getPurchase(purchase.id);
    const payment = await t.purchases.store.getLocalPayment(p.payment_ref!);
    expect(payment).toMatchObject({ amount_cents: 1000n, refunded_cents: 750n });
    expect(await t.engine.listEvents({ account_id: acct, types: ["purchase.refunded"] })).toHaveLength(1);
    expect(await t.engine.listEvents({ account_id: acct, types: ["grant.voided"] })).toHaveLength(1);
    // The customer sees it; the usage stays as it was.
    expect((await t.as(secret, "GET", `/api/v1/purchases/${purchase.id}`)).body.status).toBe("refunded");
    expect((await t.as(secret, "GET", "/api/v1/credits")).body).toMatchObject({
      payg_balance: 0,
      total_credits_used: 18750,
    });
    // Again later: the same answer, nothing more.
    expect((await t.op("POST", `/v1/purchases/${purchase.id}/refund`)).body.refunded_usd).toBe(7.5);
    expect((await t.purchases.store.getLocalPayment(p.payment_ref!))!.refunded_cents).toBe(750n);
    expect((await t.engine.audit()).ok).toBe(true);
  });

  it("a purchase used up refunds nothing; rounding is down to the cent", async () => {
    const used = await bought(1);
    await t.engine.debit({ id: `${used.acct}-all`, account_id: used.acct, amount: 7500n * C, service: "x" });
    const r = await t.op("POST", `/v1/purchases/${used.purchase.id}/refund`);
    expect(r.body).toMatchObject({ status: "refunded", refunded_usd: 0, refunded_credits: "0" });

    const odd = await bought(3);
    // 22,500 credits; 1 credit used → 22,499/22,500 of $3 = 299.98… cents → $2.99.
    await t.engine.debit({ id: `${odd.acct}-1`, account_id: odd.acct, amount: 1n * C, service: "x" });
    expect((await t.op("POST", `/v1/purchases/${odd.purchase.id}/refund`)).body.refunded_usd).toBe(2.99);
  });

  it("refusals: unknown purchase, a failed charge; an expired pack refunds nothing", async () => {
    expect((await t.op("POST", "/v1/purchases/pur_missing/refund")).status).toBe(404);
    const { acct } = await t.customer();
    const pm = (
      await t.op("POST", `/v1/accounts/${acct}/payment-methods`, {
        provider: "local",
        method_ref: "declines",
      })
    ).body.id;
    await t.op("PUT", `/v1/accounts/${acct}/auto-recharge`, {
      threshold: 10,
      amount_usd: 5,
      payment_method_id: pm,
    });
    await t.autoRecharge.idle();
    const [failed] = (await t.op("GET", `/v1/purchases?account_id=${acct}`)).body.data;
    expect(failed.status).toBe("failed");
    const r = await t.op("POST", `/v1/purchases/${failed.id}/refund`);
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({ code: "purchase_not_refundable", status: "failed" });

    const pack = await t.op("POST", "/v1/packs", {
      name: "Week",
      credits: 70,
      price_usd: 2,
      expires_after_days: 7,
    });
    const { acct: b, secret } = await t.customer();
    const cs = await t.as(secret, "POST", `/api/v1/packs/${pack.body.id}/checkout`);
    await submitCheckout(t.base, cs.body.checkout_url, "pay");
    t.clock.advance(8 * 86_400_000);
    const [p] = (await t.op("GET", `/v1/purchases?account_id=${b}`)).body.data;
    expect((await t.op("POST", `/v1/purchases/${p.id}/refund`)).body).toMatchObject({
      status: "refunded",
      refunded_usd: 0,
    });
  });
});
