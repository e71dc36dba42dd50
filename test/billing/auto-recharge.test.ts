import { expect, it } from "vitest";
import { AutoRecharge } from "../../src/billing/auto-recharge.ts";
import { Purchases } from "../../src/billing/purchases.ts";
import { Engine } from "../../src/ledger/engine.ts";
import { setup_credit_alerts } from "../support/seed-client.ts";
import { describeEachStore } from "../support/stores.ts";
import { submitCheckout, useBillingServer } from "./harness.ts";

const C = 1_000_000n;

describeEachStore("auto-recharge", (kind) => {
  const t = useBillingServer(kind);

  /** An account with `credits` promotional credits, a local test card and a 10-credit $1 pack. */
  async function setup(credits: number, card = "succeeds") {
    const { acct, secret } = await t.customer();
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "promotional", amount: credits });
    const pm = await t.op("POST", `/v1/accounts/${acct}/payment-methods`, {
      provider: "local",
      method_ref: card,
    });
    expect(pm.status, JSON.stringify(pm.body)).toBe(201);
    const pack = await t.op("POST", "/v1/packs", {
      name: `Top-up ${acct.slice(-4)}`,
      credits: 10,
      price_usd: 1,
    });
    expect(pack.status, JSON.stringify(pack.body)).toBe(201);
    return { acct, secret, pm: pm.body.id as string, pack: pack.body.id as string };
  }

  async function rule(acct: string, body: Record<string, unknown>) {
    const r = await t.op("PUT", `/v1/accounts/${acct}/auto-recharge`, body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    await t.autoRecharge.idle();
    return r.body;
  }

  /** Uses `n` × 6 credits (video_download) through POST /v1/usage, all at once. */
  async function burst(acct: string, n: number, tag: string) {
    const res = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        t.op("POST", "/v1/usage", {
          id: `${acct}-${tag}-${i}`,
          account_id: acct,
          service: "video_download",
          quantity: 1,
        }),
      ),
    );
    expect(res.filter((r) => r.status !== 201).map((r) => r.body)).toEqual([]);
    await t.autoRecharge.idle();
  }

  const purchasesOf = async (acct: string) =>
    (await t.op("GET", `/v1/purchases?account_id=${acct}&limit=1000`)).body.data as { status: string }[];

  it("500 concurrent debits across the threshold buy at most max_per_period times (exactly that, here)", async () => {
    const { acct, pm, pack } = await setup(5000);
    await rule(acct, {
      threshold: 3500,
      pack_id: pack,
      payment_method_id: pm,
      max_per_period: 3,
      cooldown_seconds: 0,
    });
    expect(await purchasesOf(acct)).toHaveLength(0);
    await burst(acct, 500, "a");
    const bought = await purchasesOf(acct);
    expect(bought).toHaveLength(3);
    expect(bought.every((p) => p.status === "paid")).toBe(true);
    // 5,000 − 500 × 6 + 3 × 10
    expect((await t.engine.balance(acct)).available).toBe(2030n * C);
    expect(await t.engine.listEvents({ account_id: acct, types: ["auto_recharge.succeeded"] })).toHaveLength(
      3,
    );
    expect(await t.engine.listEvents({ account_id: acct, types: ["purchase.completed"] })).toHaveLength(3);
    const state = (await t.op("GET", `/v1/accounts/${acct}/auto-recharge`)).body;
    expect(state).toMatchObject({ period: "2026-11", recharges_in_period: 3, consecutive_declines: 0 });

    // Another burst in the same month buys nothing more; the scheduler's pass neither.
    await burst(acct, 100, "b");
    await t.autoRecharge.sweep();
    expect(await purchasesOf(acct)).toHaveLength(3);

    // A new calendar month (UTC) starts a new count.
    t.clock.set(Date.UTC(2026, 11, 1, 0, 0, 1));
    await burst(acct, 1, "c");
    expect(await purchasesOf(acct)).toHaveLength(6);
    expect((await t.op("GET", `/v1/accounts/${acct}/auto-recharge`)).body).toMatchObject({
      period: "2026-12",
      recharges_in_period: 3,
    });
    expect((await t.engine.audit()).ok).toBe(true);
  });

  it("with a subscription, the maximum counts per billing period, not per calendar month", async () => {
    t.clock.set(Date.UTC(2027, 0, 20, 0, 0, 0));
    const { acct, pm, pack } = await setup(5);
    const plan = await t.op("POST", "/v1/plans", {
      id: `tiny-${kind}`,
      name: "Tiny",
      monthly_allowance: "10",
    });
    expect(plan.status, JSON.stringify(plan.body)).toBe(201);
    const sub = await t.op("POST", "/v1/subscriptions", { account_id: acct, plan_id: `tiny-${kind}` });
    expect(sub.status, JSON.stringify(sub.body)).toBe(201);
    await rule(acct, {
      threshold: 1000,
      pack_id: pack,
      payment_method_id: pm,
      max_per_period: 1,
      cooldown_seconds: 0,
    });
    expect(await purchasesOf(acct)).toHaveLength(1);
    expect((await t.op("GET", `/v1/accounts/${acct}/auto-recharge`)).body.period).toBe(
      `${sub.body.id}@2027-01-20T00:00:00.000Z`,
    );
    // A new calendar month inside the same billing period: still the same count.
    t.clock.set(Date.UTC(2027, 1, 2));
    await burst(acct, 1, "feb");
    await t.autoRecharge.sweep();
    expect(await purchasesOf(acct)).toHaveLength(1);
    // The next billing period (even before its renewal has run): a new count.
    t.clock.set(Date.UTC(2027, 1, 20, 0, 0, 1));
    expect(await t.autoRecharge.check(acct)).toMatchObject({ action: "recharged" });
    expect(await purchasesOf(acct)).toHaveLength(2);
    expect((await t.op("GET", `/v1/accounts/${acct}/auto-recharge`)).body.period).toBe(
      `${sub.body.id}@2027-02-20T00:00:00.000Z`,
    );
  });

  it("checks racing from two engines on two connections never buy more than the maximum", async () => {
    const { acct, pm, pack } = await setup(100);
    await t.purchases.store.putRule(
      {
        account_id: acct,
        enabled: true,
        threshold: 1000n * C,
        pack_id: pack,
        amount_cents: null,
        payment_method_id: pm,
        max_per_period: 4,
        cooldown_ms: 0,
        decline_backoff_ms: 60_000,
      },
      t.clock.now(),
    );
    const store2 = await t.db.open();
    const engine2 = new Engine(store2, { clock: t.clock });
    const other = new AutoRecharge(engine2, new Purchases(engine2));
    try {
      const outcomes = await Promise.all(
        Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? t.autoRecharge : other).check(acct)),
      );
      const bought = outcomes.filter((o) => o.action === "recharged").length;
      expect(bought).toBeGreaterThanOrEqual(1);
      expect(bought).toBeLessThanOrEqual(4);
      for (let i = 0; i < 10; i++) await Promise.all([t.autoRecharge.check(acct), other.check(acct)]);
      expect(await purchasesOf(acct)).toHaveLength(4);
      expect((await t.engine.balance(acct)).available).toBe(140n * C);
    } finally {
      await engine2.close();
    }
  });

  it("the claim is one conditional update: 50 concurrent claims (no lease) win exactly max_per_period times", async () => {
    const { acct, pm, pack } = await setup(1);
    const rule = {
      account_id: acct,
      enabled: true,
      threshold: 10n * C,
      pack_id: pack,
      amount_cents: null,
      payment_method_id: pm,
      max_per_period: 7,
      cooldown_ms: 0,
      decline_backoff_ms: 60_000,
    };
    await t.purchases.store.putRule(rule, t.clock.now());
    const store2 = await t.db.open();
    try {
      const { purchaseStoreFor } = await import("../../src/store/purchase-store.ts");
      const stores = [t.purchases.store, purchaseStoreFor(store2)];
      const now = t.clock.now();
      const won = await Promise.all(
        Array.from({ length: 50 }, (_, i) => stores[i % 2]!.claimRecharge(acct, "2026-11", now, 0)),
      );
      expect(won.filter((c) => c !== null).sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
      // A held lease blocks every other claim, whatever the count.
      const fresh = await setup(1);
      await t.purchases.store.putRule({ ...rule, account_id: fresh.acct, payment_method_id: fresh.pm }, now);
      const leased = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          stores[i % 2]!.claimRecharge(fresh.acct, "2026-11", now, 60_000),
        ),
      );
      expect(leased.filter((c) => c !== null)).toEqual([1]);
    } finally {
      await store2.close();
    }
  });

  it("the cooldown spaces purchases", async () => {
    const { acct, pm, pack } = await setup(1000);
    await rule(acct, {
      threshold: 900,
      pack_id: pack,
      payment_method_id: pm,
      max_per_period: 10,
      cooldown_seconds: 60,
    });
    await burst(acct, 50, "a");
    expect(await purchasesOf(acct)).toHaveLength(1);
    t.clock.advance(30_000);
    await burst(acct, 5, "b");
    expect(await purchasesOf(acct)).toHaveLength(1);
    t.clock.advance(31_000);
    await burst(acct, 1, "c");
    expect(await purchasesOf(acct)).toHaveLength(2);
  });

  it("a declined card backs off (doubling), does not count, and says so in events", async () => {
    const { acct, pm, pack } = await setup(100, "declines");
    await rule(acct, {
      threshold: 200,
      pack_id: pack,
      payment_method_id: pm,
      max_per_period: 1,
      cooldown_seconds: 0,
      decline_backoff_seconds: 120,
    });
    const start = t.clock.now();
    let state = (await t.op("GET", `/v1/accounts/${acct}/auto-recharge`)).body;
    expect(state).toMatchObject({ consecutive_declines: 1, recharges_in_period: 0 });
    expect(state.last_failure_reason).toMatch(/^card_declined/);
    expect(Date.parse(state.next_attempt_at)).toBe(start + 120_000);
    expect((await purchasesOf(acct)).map((p) => p.status)).toEqual(["failed"]);

    await burst(acct, 5, "a");
    await t.autoRecharge.sweep();
    expect(await purchasesOf(acct)).toHaveLength(1);

    t.clock.advance(120_000);
    expect((await t.op("POST", `/v1/accounts/${acct}/auto-recharge/check`)).body).toMatchObject({
      action: "declined",
    });
    state = (await t.op("GET", `/v1/accounts/${acct}/auto-recharge`)).body;
    expect(state.consecutive_declines).toBe(2);
    expect(Date.parse(state.next_attempt_at)).toBe(t.clock.now() + 240_000);
    const failed = await t.engine.listEvents({ account_id: acct, types: ["auto_recharge.failed"] });
    expect(failed).toHaveLength(2);
    expect(failed[1]!.data).toMatchObject({ code: "card_declined", threshold: "200" });

    // A working card after the back-off: bought once (the maximum), declines forgotten.
    const good = await t.op("POST", `/v1/accounts/${acct}/payment-methods`, {
      provider: "local",
      method_ref: "succeeds",
    });
    await rule(acct, {
      threshold: 200,
      pack_id: pack,
      payment_method_id: good.body.id,
      max_per_period: 1,
      cooldown_seconds: 0,
    });
    t.clock.advance(240_000);
    await t.autoRecharge.sweep();
    expect((await purchasesOf(acct)).map((p) => p.status)).toEqual(["failed", "failed", "paid"]);
    expect((await t.op("GET", `/v1/accounts/${acct}/auto-recharge`)).body).toMatchObject({
      consecutive_declines: 0,
      recharges_in_period: 1,
    });
  });

  it("the scheduler's sweep recharges accounts no commit has triggered", async () => {
    const { acct, pm, pack } = await setup(5);
    await t.purchases.store.putRule(
      {
        account_id: acct,
        enabled: true,
        threshold: 50n * C,
        pack_id: pack,
        amount_cents: null,
        payment_method_id: pm,
        max_per_period: 1,
        cooldown_ms: 0,
        decline_backoff_ms: 60_000,
      },
      t.clock.now(),
    );
    expect(await purchasesOf(acct)).toHaveLength(0);
    const r = await t.autoRecharge.sweep();
    expect(r.recharged).toBeGreaterThanOrEqual(1);
    expect((await t.engine.balance(acct)).available).toBe(15n * C);
  });

  it("the seed's critical threshold → auto-purchase: below 100 credits, $50 of credits is bought by itself", async () => {
    const { acct, secret } = await t.customer();
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "subscription", amount: 2000 });
    const pm = (
      await t.op("POST", `/v1/accounts/${acct}/payment-methods`, {
        provider: "local",
        method_ref: "succeeds",
      })
    ).body.id;
    // The customer sets it up on its own account: threshold = critical_threshold, amount = the seed's $50.
    const put = await t.as(secret, "PUT", "/api/v1/auto-recharge", {
      threshold: 100,
      amount_usd: 50,
      payment_method_id: pm,
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body).toMatchObject({
      threshold: "100",
      amount_usd: 50,
      max_per_period: 5,
      cooldown_seconds: 60,
    });
    expect((await t.as(secret, "GET", "/api/v1/auto-recharge")).body.enabled).toBe(true);
    expect((await t.as(secret, "GET", "/api/v1/payment-methods")).body.data).toHaveLength(1);

    // 1,950 credits used: 50 left, under the critical threshold.
    const used = await t.engine.debit({
      id: `${acct}-big`,
      account_id: acct,
      amount: 1950n * C,
      service: "music_generation",
    });
    expect(used.replay).toBe(false);
    await t.autoRecharge.idle();
    const credits = (await t.as(secret, "GET", "/api/v1/credits")).body;
    expect(credits.payg_balance).toBe(375000);
    expect(credits.total_available_credits).toBe(375050);

    // The seed's own alert code still works: at the critical level it opens a $50 checkout, which can be paid.
    const alerts: string[] = [];
    await setup_credit_alerts(`${t.base}/api/v1`, secret, (a) => alerts.push(a), 500_000, 400_000);
    expect(alerts).toEqual(["CRITICAL: Only 375050 credits remaining!"]);
    const [session] = (await t.purchases.store.listSessions(acct, undefined, 10)).data;
    expect(session).toMatchObject({ amount_cents: 5000n, status: "open" });
    expect((await submitCheckout(t.base, session!.url!, "pay")).status).toBe(200);
    expect((await t.as(secret, "GET", "/api/v1/credits")).body.payg_balance).toBe(750000);
  });

  it("a suspended or closed account is never charged", async () => {
    const { acct, pm, pack } = await setup(5);
    await t.op("POST", `/v1/accounts/${acct}/suspend`);
    await rule(acct, { threshold: 100, pack_id: pack, payment_method_id: pm, cooldown_seconds: 0 });
    expect(await t.autoRecharge.check(acct)).toEqual({ action: "none", reason: "the account is suspended" });
    await t.op("POST", `/v1/accounts/${acct}/close`);
    await t.autoRecharge.sweep();
    expect(await purchasesOf(acct)).toHaveLength(0);
    // A closed account cannot open a checkout either.
    const r = await t.op("POST", `/v1/accounts/${acct}/checkout-sessions`, { amount_usd: 5 });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe("account_not_active");
  });

  it("bad rules are refused with the field at fault and change nothing", async () => {
    const { acct, secret, pm, pack } = await setup(10);
    const other = await setup(10);
    const cases: [Record<string, unknown>, number, string][] = [
      [{ threshold: 5, pack_id: pack, amount_usd: 5, payment_method_id: pm }, 400, "pack_id"],
      [{ threshold: 5, payment_method_id: pm }, 400, "pack_id"],
      [{ threshold: 5, amount_usd: 0.5, payment_method_id: pm }, 400, "amount_usd"],
      [{ threshold: -1, amount_usd: 5, payment_method_id: pm }, 400, "threshold"],
      [{ threshold: 5, amount_usd: 5, payment_method_id: other.pm }, 404, "payment_method_id"],
      [{ threshold: 5, pack_id: "pack_nope", payment_method_id: pm }, 404, "pack_id"],
      [{ threshold: 5, amount_usd: 5, payment_method_id: pm, max_per_period: 0 }, 400, "max_per_period"],
    ];
    for (const [body, status, field] of cases) {
      const r = await t.as(secret, "PUT", "/api/v1/auto-recharge", body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(r.body.error.field, JSON.stringify(r.body)).toBe(field);
    }
    expect((await t.as(secret, "GET", "/api/v1/auto-recharge")).status).toBe(404);
    expect(await purchasesOf(acct)).toHaveLength(0);
  });
});
