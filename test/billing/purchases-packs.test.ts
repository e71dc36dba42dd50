import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { submitCheckout, useBillingServer } from "./harness.ts";

const C = 1_000_000n;
const DAY = 86_400_000;

describeEachStore("packs, tiers and where purchased credits stand", (kind) => {
  const t = useBillingServer(kind);

  async function buyPack(secret: string, packId: string) {
    const r = await t.as(secret, "POST", `/api/v1/packs/${packId}/checkout`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const paid = await submitCheckout(t.base, r.body.checkout_url, "pay");
    expect(paid.status).toBe(200);
    return r.body as { session_id: string; credits_to_receive: number; amount_usd: number };
  }

  it("packs never expire unless configured, and are used after the monthly supply (priority 50, kind purchase)", async () => {
    const forever = await t.op("POST", "/v1/packs", { name: "Starter", credits: 1000, price_usd: 10 });
    expect(forever.status, JSON.stringify(forever.body)).toBe(201);
    expect(forever.body).toMatchObject({
      name: "Starter",
      credits: "1000",
      price_usd: 10,
      currency: "USD",
      expires_after_days: null,
      active: true,
    });
    const monthly = await t.op("POST", "/v1/packs", {
      name: "Sprint",
      credits: "500.5",
      price_usd: "4.99",
      expires_after_days: 30,
      description: "Valid for 30 days",
    });
    expect(monthly.status).toBe(201);

    const { acct, secret } = await t.customer();
    const listed = (await t.as(secret, "GET", "/api/v1/packs")).body.data.map((p: { id: string }) => p.id);
    expect(listed).toEqual(expect.arrayContaining([forever.body.id, monthly.body.id]));

    // The monthly supply: 2,000 credits until the end of the period.
    await t.op("POST", `/v1/accounts/${acct}/grants`, {
      kind: "subscription",
      amount: 2000,
      expires_at: new Date(t.clock.now() + 30 * DAY).toISOString(),
    });
    const a = await buyPack(secret, forever.body.id);
    expect(a).toMatchObject({ credits_to_receive: 1000, amount_usd: 10 });
    const paidAt = t.clock.now();
    await buyPack(secret, monthly.body.id);
    const grants = (await t.engine.listGrants(acct)).filter((g) => g.kind === "purchase");
    expect(grants.map((g) => [g.priority, g.amount, g.expires_at])).toEqual([
      [50, 1000n * C, null],
      [50, 500_500_000n, paidAt + 30 * DAY],
    ]);

    // 2,300 credits of usage: 2,000 from the monthly supply first, then 300 from the pack that expires first.
    const u = await t.engine.debit({
      id: `${acct}-u1`,
      account_id: acct,
      amount: 2300n * C,
      service: "transcription",
    });
    expect(u.usage.parts.map((p) => [p.kind, p.amount])).toEqual([
      ["subscription", 2000n * C],
      ["purchase", 300n * C],
    ]);
    const credits = (await t.as(secret, "GET", "/api/v1/credits")).body;
    expect(credits).toMatchObject({
      credits_balance: 0,
      payg_balance: 1200.5,
      total_payg_credits_purchased: 1500.5,
    });

    // 31 days on, the 30-day pack has expired (200.5 left written off); the other never does, even 10 years on.
    t.clock.advance(31 * DAY);
    await t.engine.sweep();
    expect((await t.engine.balance(acct)).available).toBe(1000n * C);
    t.clock.advance(3650 * DAY);
    await t.engine.sweep();
    expect((await t.engine.balance(acct)).by_kind.purchase).toBe(1000n * C);
    expect((await t.engine.audit()).ok).toBe(true);
  });

  it("a pack no longer sold is hidden and cannot be bought; packs are validated", async () => {
    const { secret } = await t.customer();
    const p = await t.op("POST", "/v1/packs", { name: "Old", credits: 10, price_usd: 1 });
    const off = await t.op("PATCH", `/v1/packs/${p.body.id}`, { active: false });
    expect(off.body.active).toBe(false);
    expect(
      (await t.as(secret, "GET", "/api/v1/packs")).body.data.map((x: { id: string }) => x.id),
    ).not.toContain(p.body.id);
    const buy = await t.as(secret, "POST", `/api/v1/packs/${p.body.id}/checkout`);
    expect(buy.status).toBe(400);
    expect(buy.body.error.field).toBe("pack_id");
    expect((await t.as(secret, "POST", "/api/v1/packs/pack_missing/checkout")).status).toBe(404);
    const all = (await t.op("GET", "/v1/packs?include_inactive=true")).body.data.map(
      (x: { id: string }) => x.id,
    );
    expect(all).toContain(p.body.id);
    for (const [body, field] of [
      [{ name: "x", credits: 0, price_usd: 1 }, "credits"],
      [{ name: "x", credits: 1, price_usd: 0 }, "price_usd"],
      [{ name: "x", credits: 1, price_usd: 1, expires_after_days: 0 }, "expires_after_days"],
      [{ name: "x", credits: 1, price_usd: "1.001" }, "price_usd"],
      [{ name: "x", credits: 1, price_usd: 1, currency: "usd" }, "currency"],
    ] as const) {
      const r = await t.op("POST", "/v1/packs", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.field).toBe(field);
    }
    // A reader key cannot buy.
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id;
    const reader = (await t.op("POST", `/v1/accounts/${acct}/keys`, { scopes: ["read"] })).body.secret;
    const forbidden = await t.as(reader, "POST", `/api/v1/packs/${p.body.id}/checkout`);
    expect(forbidden.status).toBe(403);
  });

  it("bulk tiers give more credits per dollar above an amount, and refuse tiers that would give less", async () => {
    const { secret } = await t.customer();
    const put = await t.op("PUT", "/v1/payg/tiers", {
      tiers: [
        { min_amount_usd: 500, credits_per_dollar: 9000 },
        { min_amount_usd: 100, credits_per_dollar: 8000 },
      ],
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body.data).toEqual([
      { min_amount_usd: 100, credits_per_dollar: 8000 },
      { min_amount_usd: 500, credits_per_dollar: 9000 },
    ]);
    const quote = async (amount_usd: number | string) =>
      (await t.as(secret, "POST", "/api/v1/credits/payg/create-checkout-session", { amount_usd })).body
        .credits_to_receive;
    expect(await quote("99.99")).toBe(749925);
    expect(await quote(100)).toBe(800000);
    expect(await quote(499)).toBe(3992000);
    expect(await quote(500)).toBe(4500000);
    expect(await quote(1000)).toBe(9000000);

    for (const tiers of [
      [{ min_amount_usd: 100, credits_per_dollar: 7000 }],
      [
        { min_amount_usd: 100, credits_per_dollar: 9000 },
        { min_amount_usd: 200, credits_per_dollar: 8000 },
      ],
      [
        { min_amount_usd: 100, credits_per_dollar: 8000 },
        { min_amount_usd: 100, credits_per_dollar: 9000 },
      ],
    ]) {
      const r = await t.op("PUT", "/v1/payg/tiers", { tiers });
      expect(r.status, JSON.stringify(tiers)).toBe(400);
      expect(r.body.error.field).toMatch(/^tiers\.\d\./);
    }
    expect((await t.op("GET", "/v1/payg/tiers")).body.data).toHaveLength(2);
    // Nor may the base rate rise to a tier's.
    const base = await t.op("PUT", "/v1/payg", {
      credits_per_dollar: 8000,
      min_amount_usd: 1,
      max_amount_usd: 1000,
      currency: "USD",
    });
    expect(base.status).toBe(400);
    expect(base.body.error.field).toBe("credits_per_dollar");
    expect((await t.op("PUT", "/v1/payg/tiers", { tiers: [] })).body.data).toEqual([]);
    expect(await quote(500)).toBe(3750000);
  });
});
