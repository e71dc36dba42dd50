import Stripe from "stripe";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { FakeStripe } from "./fake-stripe.ts";
import { Purchases } from "../../src/billing/purchases.ts";
import { useBillingServer } from "./harness.ts";

const WEBHOOK_SECRET = "whsec_test_tally_secret";
/** The SDK's own signing helper (the same library Tally verifies with). */
const signer = new Stripe("sk_test_tally");

/** Stripe end to end: the official SDK against a local server answering its API calls; SDK-signed webhooks. */
describeEachStore("purchases through Stripe (official SDK, signed webhooks, no network)", (kind) => {
  const fake = new FakeStripe();
  beforeAll(() => fake.start());
  afterAll(() => fake.stop());
  const t = useBillingServer(kind, () => ({
    stripe: { secret_key: "sk_test_tally", webhook_secret: WEBHOOK_SECRET, api_base: fake.url },
  }));

  /** A checkout.session.* event about the session Stripe made for `tallyId`, as Stripe would send it. */
  function event(type: string, tallyId: string, over: Record<string, unknown> = {}) {
    const created = fake
      .callsTo("/v1/checkout/sessions")
      .find((c) => c.form.client_reference_id === tallyId)!;
    return {
      id: `evt_test_${Math.random().toString(36).slice(2)}`,
      object: "event",
      type,
      api_version: "2025-01-01",
      created: Math.floor(Date.now() / 1000),
      livemode: false,
      data: {
        object: {
          id: stripeRefOf(tallyId),
          object: "checkout.session",
          client_reference_id: tallyId,
          metadata: { tally_session_id: tallyId },
          amount_total: Number(created.form["line_items[0][price_data][unit_amount]"]),
          currency: created.form["line_items[0][price_data][currency]"],
          payment_status: type === "checkout.session.expired" ? "unpaid" : "paid",
          status: type === "checkout.session.expired" ? "expired" : "complete",
          payment_intent: `pi_test_for_${tallyId}`,
          ...over,
        },
      },
    };
  }

  const refs = new Map<string, string>();
  function stripeRefOf(tallyId: string): string {
    return refs.get(tallyId)!;
  }

  async function deliver(payload: unknown, opts: { secret?: string; signature?: string } = {}) {
    const body = JSON.stringify(payload, null, 2);
    const header =
      opts.signature ??
      signer.webhooks.generateTestHeaderString({ payload: body, secret: opts.secret ?? WEBHOOK_SECRET });
    const res = await fetch(`${t.base}/webhooks/stripe`, {
      method: "POST",
      headers: { "content-type": "application/json", "stripe-signature": header },
      body,
    });
    return { status: res.status, body: (await res.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  }

  async function checkout(secret: string, amount_usd: number) {
    const r = await t.as(secret, "POST", "/api/v1/credits/payg/create-checkout-session", { amount_usd });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const s = await t.purchases.getSession(r.body.session_id);
    refs.set(s.id, s.provider_ref!);
    return r.body as {
      session_id: string;
      credits_to_receive: number;
      amount_usd: number;
      checkout_url: string;
    };
  }

  it("a checkout creates a Stripe Checkout Session with the amount, currency and Tally's ids", async () => {
    const { acct, secret } = await t.customer();
    const cs = await checkout(secret, 25);
    expect(cs).toMatchObject({ credits_to_receive: 187500, amount_usd: 25 });
    const call = fake.callsTo("/v1/checkout/sessions").at(-1)!;
    expect(call.form).toMatchObject({
      mode: "payment",
      "line_items[0][quantity]": "1",
      "line_items[0][price_data][currency]": "usd",
      "line_items[0][price_data][unit_amount]": "2500",
      "line_items[0][price_data][product_data][name]": "187500 credits",
      client_reference_id: cs.session_id,
      "metadata[tally_session_id]": cs.session_id,
      "metadata[tally_account_id]": acct,
      success_url: `${t.base}/checkout/${cs.session_id}/done`,
      cancel_url: `${t.base}/checkout/${cs.session_id}/canceled`,
    });
    expect(call.idempotency_key).toBe(`tally-checkout-${cs.session_id}`);
    expect(cs.checkout_url).toBe(`https://checkout.stripe.test/c/pay/${refs.get(cs.session_id)}`);
    expect((await t.engine.balance(acct)).available).toBe(0n);
  });

  it("checkout.session.completed, delivered 5 times concurrently, credits once", async () => {
    const { acct, secret } = await t.customer();
    const cs = await checkout(secret, 10);
    const payload = event("checkout.session.completed", cs.session_id);
    const answers = await Promise.all(Array.from({ length: 5 }, () => deliver(payload)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(answers.filter((a) => a.body.replay === false)).toHaveLength(1);
    expect((await t.engine.balance(acct)).available).toBe(75_000_000_000n);
    expect(await t.engine.listGrants(acct)).toHaveLength(1);
    const purchases = (await t.as(secret, "GET", "/api/v1/purchases")).body.data;
    expect(purchases).toHaveLength(1);
    expect(purchases[0]).toMatchObject({
      status: "paid",
      provider: "stripe",
      amount_usd: 10,
      credits: "75000",
    });
    expect(await t.engine.listEvents({ account_id: acct, types: ["purchase.completed"] })).toHaveLength(1);
    // Stripe retries later, and async_payment_succeeded arrives too: still once.
    expect((await deliver(payload)).body.replay).toBe(true);
    expect(
      (await deliver(event("checkout.session.async_payment_succeeded", cs.session_id))).body.replay,
    ).toBe(true);
    expect((await t.engine.balance(acct)).available).toBe(75_000_000_000n);
  });

  it("refuses a bad signature, a stale one, another secret's, and a missing one; nothing is credited", async () => {
    const { acct, secret } = await t.customer();
    const cs = await checkout(secret, 3);
    const payload = event("checkout.session.completed", cs.session_id);
    const body = JSON.stringify(payload, null, 2);
    expect((await deliver(payload, { secret: "whsec_someone_else" })).status).toBe(401);
    const stale = signer.webhooks.generateTestHeaderString({
      payload: body,
      secret: WEBHOOK_SECRET,
      timestamp: Math.floor(Date.now() / 1000) - 3600,
    });
    expect((await deliver(payload, { signature: stale })).status).toBe(401);
    const tampered = { ...payload, data: { object: { ...payload.data.object, amount_total: 1 } } };
    const goodSig = signer.webhooks.generateTestHeaderString({ payload: body, secret: WEBHOOK_SECRET });
    const res = await fetch(`${t.base}/webhooks/stripe`, {
      method: "POST",
      headers: { "content-type": "application/json", "stripe-signature": goodSig },
      body: JSON.stringify(tampered, null, 2),
    });
    expect(res.status).toBe(401);
    const none = await fetch(`${t.base}/webhooks/stripe`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(none.status).toBe(401);
    expect((await t.engine.balance(acct)).available).toBe(0n);
    expect((await t.purchases.getSession(cs.session_id)).status).toBe("open");
  });

  it("a signed event whose amount differs from the session is refused; unknown events are acknowledged", async () => {
    const { acct, secret } = await t.customer();
    const cs = await checkout(secret, 7);
    const wrong = await deliver(event("checkout.session.completed", cs.session_id, { amount_total: 100 }));
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.code).toBe("validation_error");
    expect((await t.engine.balance(acct)).available).toBe(0n);
    const other = await deliver({
      id: "evt_test_other",
      object: "event",
      type: "customer.created",
      data: { object: { id: "cus_1" } },
    });
    expect(other).toMatchObject({ status: 200, body: { received: true, ignored: "customer.created" } });
    const unpaid = await deliver(
      event("checkout.session.completed", cs.session_id, { payment_status: "unpaid" }),
    );
    expect(unpaid.body.ignored).toBe("checkout.session.completed");
    expect((await t.engine.balance(acct)).available).toBe(0n);
  });

  it("save_payment_method: the card paid with is saved once (5 deliveries) and auto-recharge charges it", async () => {
    const { acct, secret } = await t.customer();
    const r = await t.as(secret, "POST", "/api/v1/credits/payg/create-checkout-session", {
      amount_usd: 5,
      save_payment_method: true,
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    refs.set(r.body.session_id, (await t.purchases.getSession(r.body.session_id)).provider_ref!);
    expect(fake.callsTo("/v1/checkout/sessions").at(-1)!.form).toMatchObject({
      customer_creation: "always",
      "payment_intent_data[setup_future_usage]": "off_session",
    });
    const payload = event("checkout.session.completed", r.body.session_id, {
      customer: "cus_SavedAtCheckout",
    });
    const answers = await Promise.all(Array.from({ length: 5 }, () => deliver(payload)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    const methods = (await t.as(secret, "GET", "/api/v1/payment-methods")).body.data;
    expect(methods).toHaveLength(1);
    expect(methods[0]).toMatchObject({
      provider: "stripe",
      customer_ref: "cus_SavedAtCheckout",
      method_ref: "pm_card_visa",
      label: "card saved at checkout",
    });
    expect(
      fake.calls.some(
        (c) => c.method === "GET" && c.path === `/v1/payment_intents/pi_test_for_${r.body.session_id}`,
      ),
    ).toBe(true);
    // The customer turns auto-recharge on with it: below 1,000 credits, buy $10.
    const put = await t.as(secret, "PUT", "/api/v1/auto-recharge", {
      threshold: 100_000,
      amount_usd: 10,
      payment_method_id: methods[0].id,
      max_per_period: 1,
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    await t.autoRecharge.idle();
    expect(fake.callsTo("/v1/payment_intents").at(-1)!.form).toMatchObject({
      customer: "cus_SavedAtCheckout",
      payment_method: "pm_card_visa",
      off_session: "true",
      amount: "1000",
    });
    expect((await t.engine.balance(acct)).available).toBe(112_500_000_000n);
  });

  it("Stripe refusing the call (a wrong key) is a 502 payment_provider_error, and no session is recorded", async () => {
    const { acct } = await t.customer();
    const wrong = new Purchases(t.engine, {
      stripe: { secret_key: "sk_test_wrong", webhook_secret: WEBHOOK_SECRET, api_base: fake.url },
    });
    await expect(wrong.createCheckout(acct, { amount_cents: 500n })).rejects.toMatchObject({
      code: "payment_provider_error",
      details: { provider: "stripe" },
    });
    expect((await t.purchases.store.listSessions(acct, undefined, 10)).data).toHaveLength(0);
    const unreachable = new Purchases(t.engine, {
      stripe: { secret_key: "sk_test_tally", webhook_secret: WEBHOOK_SECRET, api_base: "http://127.0.0.1:9" },
    });
    await expect(unreachable.createCheckout(acct, { amount_cents: 500n })).rejects.toMatchObject({
      code: "payment_provider_error",
    });
  });

  it("checkout.session.expired closes the session", async () => {
    const { secret } = await t.customer();
    const cs = await checkout(secret, 2);
    expect((await deliver(event("checkout.session.expired", cs.session_id))).status).toBe(200);
    expect((await t.as(secret, "GET", `/api/v1/checkout-sessions/${cs.session_id}`)).body.status).toBe(
      "expired",
    );
  });

  it("auto-recharge charges the saved card off-session; a decline backs off; a refund goes back through Stripe", async () => {
    const { acct } = await t.customer();
    const visa = await t.op("POST", `/v1/accounts/${acct}/payment-methods`, {
      provider: "stripe",
      customer_ref: "cus_Tally123",
      method_ref: "pm_card_visa",
    });
    expect(visa.status, JSON.stringify(visa.body)).toBe(201);
    const rule = await t.op("PUT", `/v1/accounts/${acct}/auto-recharge`, {
      threshold: 100,
      amount_usd: 50,
      payment_method_id: visa.body.id,
      max_per_period: 2,
      cooldown_seconds: 0,
    });
    expect(rule.status, JSON.stringify(rule.body)).toBe(200);
    await t.autoRecharge.idle();
    // Balance 0 < 100: one $50 recharge at 7,500 credits per dollar.
    expect((await t.engine.balance(acct)).available).toBe(375_000_000_000n);
    const pi = fake.callsTo("/v1/payment_intents").at(-1)!;
    expect(pi.form).toMatchObject({
      amount: "5000",
      currency: "usd",
      customer: "cus_Tally123",
      payment_method: "pm_card_visa",
      off_session: "true",
      confirm: "true",
    });
    const [purchase] = (await t.op("GET", `/v1/purchases?account_id=${acct}`)).body.data;
    expect(pi.idempotency_key).toBe(`tally-charge-${purchase.id}`);
    expect(purchase).toMatchObject({
      source: "auto_recharge",
      status: "paid",
      provider: "stripe",
      amount_usd: 50,
    });

    // Refund after using 75,000 credits: 300,000 left of 375,000 → $40.00 back through Stripe.
    await t.engine.debit({
      id: `${acct}-use`,
      account_id: acct,
      amount: 75_000_000_000n,
      service: "transcription",
    });
    await t.autoRecharge.idle();
    const refunded = await t.op("POST", `/v1/purchases/${purchase.id}/refund`, { reason: "customer asked" });
    expect(refunded.status, JSON.stringify(refunded.body)).toBe(200);
    expect(refunded.body).toMatchObject({ status: "refunded", refunded_usd: 40, refunded_credits: "300000" });
    const re = fake.callsTo("/v1/refunds").at(-1)!;
    const paymentRef = (await t.purchases.getPurchase(purchase.id)).payment_ref!;
    expect(paymentRef).toMatch(/^pi_test_/);
    expect(re.form).toMatchObject({ payment_intent: paymentRef, amount: "4000" });
    expect(re.idempotency_key).toBe(`tally-refund-refund_${purchase.id}`);
    // The refund paused auto-recharge: the account stays at 0, nothing is bought again.
    await t.autoRecharge.idle();
    expect((await t.engine.balance(acct)).available).toBe(0n);
    expect(
      fake.callsTo("/v1/payment_intents").filter((c) => c.form.customer === "cus_Tally123"),
    ).toHaveLength(1);
    expect((await t.op("GET", `/v1/accounts/${acct}/auto-recharge`)).body).toMatchObject({
      enabled: false,
      last_failure_reason: `paused by the refund of purchase ${purchase.id}`,
    });
  });

  it("a declined card: the attempt fails, backs off, does not count, and the failure is an event", async () => {
    const { acct } = await t.customer();
    const declined = await t.op("POST", `/v1/accounts/${acct}/payment-methods`, {
      provider: "stripe",
      customer_ref: "cus_Tally123",
      method_ref: "pm_card_chargeDeclined",
    });
    const r2 = await t.op("PUT", `/v1/accounts/${acct}/auto-recharge`, {
      threshold: 100,
      amount_usd: 50,
      payment_method_id: declined.body.id,
      max_per_period: 2,
      cooldown_seconds: 0,
      decline_backoff_seconds: 600,
    });
    expect(r2.status).toBe(200);
    await t.autoRecharge.idle();
    const state = (await t.op("GET", `/v1/accounts/${acct}/auto-recharge`)).body;
    expect(state).toMatchObject({ consecutive_declines: 1, recharges_in_period: 0 });
    expect(state.last_failure_reason).toMatch(/generic_decline/);
    expect(Date.parse(state.next_attempt_at)).toBe(t.clock.now() + 600_000);
    const failed = await t.engine.listEvents({ account_id: acct, types: ["auto_recharge.failed"] });
    expect(failed).toHaveLength(1);
    expect(failed[0]!.data).toMatchObject({ code: "generic_decline" });
    expect((await t.engine.balance(acct)).available).toBe(0n);
  });
});
