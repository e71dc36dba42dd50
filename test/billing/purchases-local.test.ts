import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { submitCheckout, useBillingServer } from "./harness.ts";

/** The local provider end to end over real HTTP: the seed's checkout, the page, pay, cancel, exactly once. */
describeEachStore("purchases through the local checkout page", (kind) => {
  const t = useBillingServer(kind);

  async function checkout(secret: string, amount_usd: number | string) {
    const r = await t.as(secret, "POST", "/api/v1/credits/payg/create-checkout-session", { amount_usd });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body as {
      session_id: string;
      credits_to_receive: number;
      amount_usd: number;
      checkout_url: string;
    };
  }

  it("the seed's checkout session opens a page that a person pays; the credits arrive as purchased (payg)", async () => {
    const { acct, secret } = await t.customer();
    const cs = await checkout(secret, 25);
    expect(cs).toMatchObject({ credits_to_receive: 187500, amount_usd: 25 });
    expect(cs.checkout_url.startsWith(`${t.base}/checkout/${cs.session_id}?token=`)).toBe(true);

    const page = await fetch(cs.checkout_url);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    const html = await page.text();
    expect(html).toContain("25.00 USD");
    expect(html).toContain("187500");
    expect(html).toMatch(/<html lang="en">/);
    expect(html).toMatch(/<button class="pay" type="submit">Pay 25.00 USD<\/button>/);
    expect(html).toMatch(/<main aria-labelledby="title">/);

    const paid = await submitCheckout(t.base, cs.checkout_url, "pay");
    expect(paid.status).toBe(200);
    expect(paid.html).toContain("the payment is complete");

    const credits = await t.as(secret, "GET", "/api/v1/credits");
    expect(credits.body).toMatchObject({
      payg_balance: 187500,
      total_available_credits: 187500,
      total_payg_credits_purchased: 187500,
    });
    const grants = await t.engine.listGrants(acct);
    expect(grants).toHaveLength(1);
    expect(grants[0]).toMatchObject({
      kind: "purchase",
      priority: 50,
      expires_at: null,
      amount: 187_500_000_000n,
    });

    const list = await t.as(secret, "GET", "/api/v1/purchases");
    expect(list.body.data).toHaveLength(1);
    expect(list.body.data[0]).toMatchObject({
      status: "paid",
      source: "checkout",
      amount_usd: 25,
      currency: "USD",
      credits: "187500",
      provider: "local",
      checkout_session_id: cs.session_id,
    });
    const session = await t.as(secret, "GET", `/api/v1/checkout-sessions/${cs.session_id}`);
    expect(session.body).toMatchObject({
      status: "paid",
      purchase_id: list.body.data[0].id,
      checkout_url: null,
    });

    // The page now says it is paid; paying again is a replay that adds nothing.
    expect(await (await fetch(cs.checkout_url)).text()).toContain("This purchase is paid");
    const again = await submitCheckout(t.base, cs.checkout_url, "pay");
    expect(again.status).toBe(200);
    expect(again.html).toContain("already paid");
    expect((await t.engine.balance(acct)).available).toBe(187_500_000_000n);
    expect((await t.engine.audit()).ok).toBe(true);
  });

  it("a confirmation delivered 5 times concurrently credits once, with one purchase.completed event", async () => {
    const { acct, secret } = await t.customer();
    const cs = await checkout(secret, "10.50");
    const results = await Promise.all(
      Array.from({ length: 5 }, () => submitCheckout(t.base, cs.checkout_url, "pay")),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(results.filter((r) => r.html.includes("the payment is complete"))).toHaveLength(1);
    expect((await t.engine.balance(acct)).available).toBe(78_750_000_000n);
    expect(await t.engine.listGrants(acct)).toHaveLength(1);
    expect(await t.purchases.store.countPurchases(acct)).toBe(1);
    const events = await t.engine.listEvents({ account_id: acct, types: ["purchase.completed"] });
    expect(events).toHaveLength(1);
    expect(events[0]!.data).toMatchObject({ amount_cents: 1050, credits: "78750", source: "checkout" });
    // And the same through the service directly, 5 at once again: still one grant.
    const token = new URL(cs.checkout_url).searchParams.get("token")!;
    const direct = await Promise.all(
      Array.from({ length: 5 }, () => t.purchases.payLocal(cs.session_id, token)),
    );
    expect(direct.every((d) => d.replay)).toBe(true);
    expect((await t.engine.balance(acct)).available).toBe(78_750_000_000n);
  });

  it("save_payment_method keeps the local test card for auto-recharge, once", async () => {
    const { secret } = await t.customer();
    const r = await t.as(secret, "POST", "/api/v1/credits/payg/create-checkout-session", {
      amount_usd: 1,
      save_payment_method: true,
    });
    expect(await (await fetch(r.body.checkout_url)).text()).toContain("saved for automatic top-ups");
    await Promise.all([1, 2, 3].map(() => submitCheckout(t.base, r.body.checkout_url, "pay")));
    const methods = (await t.as(secret, "GET", "/api/v1/payment-methods")).body.data;
    expect(methods.map((m: { provider: string; method_ref: string }) => [m.provider, m.method_ref])).toEqual([
      ["local", "succeeds"],
    ]);
  });

  it("cancel closes the checkout: nothing is paid, paying afterwards is refused", async () => {
    const { acct, secret } = await t.customer();
    const cs = await checkout(secret, 5);
    const canceled = await submitCheckout(t.base, cs.checkout_url, "cancel");
    expect(canceled.status).toBe(200);
    expect(canceled.html).toContain("nothing was paid");
    const page = await fetch(cs.checkout_url);
    expect(page.status).toBe(409);
    expect(await page.text()).toContain("This checkout is canceled");
    const late = await submitCheckout(t.base, cs.checkout_url, "pay");
    expect(late.status).toBe(409);
    expect((await t.engine.balance(acct)).available).toBe(0n);
    expect((await t.as(secret, "GET", `/api/v1/checkout-sessions/${cs.session_id}`)).body.status).toBe(
      "canceled",
    );
    expect(await t.engine.listEvents({ account_id: acct, types: ["checkout.canceled"] })).toHaveLength(1);
  });

  it("pay and cancel racing: exactly one wins", async () => {
    const { acct, secret } = await t.customer();
    const cs = await checkout(secret, 2);
    const [pay, cancel] = await Promise.all([
      submitCheckout(t.base, cs.checkout_url, "pay"),
      submitCheckout(t.base, cs.checkout_url, "cancel"),
    ]);
    expect([pay.status, cancel.status].sort()).toEqual([200, 409]);
    const status = (await t.as(secret, "GET", `/api/v1/checkout-sessions/${cs.session_id}`)).body.status;
    expect((await t.engine.balance(acct)).available).toBe(status === "paid" ? 15_000_000_000n : 0n);
  });

  it("without the page's token the session is not found, and nothing changes", async () => {
    const { acct, secret } = await t.customer();
    const cs = await checkout(secret, 3);
    const wrong = cs.checkout_url.replace(/token=[^&]+/, "token=guess");
    const page = await fetch(wrong);
    expect(page.status).toBe(404);
    expect(await page.text()).not.toContain("22500");
    expect((await fetch(cs.checkout_url.replace(/\?.*$/, ""))).status).toBe(404);
    expect((await submitCheckout(t.base, wrong, "pay")).status).toBe(404);
    expect((await submitCheckout(t.base, wrong, "cancel")).status).toBe(404);
    expect((await t.engine.balance(acct)).available).toBe(0n);
  });

  it("an expired checkout cannot be paid", async () => {
    const { acct, secret } = await t.customer();
    const cs = await checkout(secret, 4);
    t.clock.advance(24 * 3600_000 + 1);
    expect((await submitCheckout(t.base, cs.checkout_url, "pay")).status).toBe(409);
    expect((await t.engine.balance(acct)).available).toBe(0n);
    expect((await t.as(secret, "GET", `/api/v1/checkout-sessions/${cs.session_id}`)).body.status).toBe(
      "expired",
    );
  });

  it("amounts outside min and max are refused with a clear error naming the field; nothing is recorded", async () => {
    const { acct, secret } = await t.customer();
    for (const amount_usd of [0.99, 1000.01, -1, "ten"]) {
      const r = await t.as(secret, "POST", "/api/v1/credits/payg/create-checkout-session", { amount_usd });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: "validation_error", field: "amount_usd" });
    }
    const low = await t.as(secret, "POST", "/api/v1/credits/payg/create-checkout-session", {
      amount_usd: 0.5,
    });
    expect(low.body.error.message).toBe("amount_usd must be between 1 and 1000 USD");
    expect(low.body.error).toMatchObject({ min: 1, max: 1000 });
    expect((await t.purchases.store.listSessions(acct, undefined, 10)).data).toHaveLength(0);
  });

  it("another account's purchase and session answer 404", async () => {
    const a = await t.customer();
    const b = await t.customer();
    const cs = await checkout(a.secret, 1);
    await submitCheckout(t.base, cs.checkout_url, "pay");
    const pid = (await t.as(a.secret, "GET", "/api/v1/purchases")).body.data[0].id;
    expect((await t.as(b.secret, "GET", `/api/v1/purchases/${pid}`)).status).toBe(404);
    expect((await t.as(b.secret, "GET", `/api/v1/checkout-sessions/${cs.session_id}`)).status).toBe(404);
    expect((await t.as(b.secret, "GET", "/api/v1/purchases")).body.data).toHaveLength(0);
  });
});
