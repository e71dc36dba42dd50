/** The billing API over real HTTP on both stores: plans, subscriptions, the seed's reset fields, statements, adjustments. */
import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { useServer } from "../http/harness.ts";

const DAY = 86_400_000;

describeEachStore("billing API", (kind) => {
  const t = useServer(kind);

  async function account(): Promise<string> {
    const r = await t.op("POST", "/v1/accounts", {});
    expect(r.status).toBe(201);
    return r.body.id as string;
  }

  it("plans: create (replay, conflict), read, list, update, archive; bad input names the field", async () => {
    const body = {
      id: "business",
      name: "Business",
      monthly_allowance: "2000",
      price: "99.00",
      overage_policy: "allow",
      overage_rate: "0.012",
      overage_limit: "500",
      rate_limit_tier: "pro",
      rollover_cap: "100",
    };
    const created = await t.op("POST", "/v1/plans", body);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      id: "business",
      monthly_allowance: "2000",
      price: "99.00",
      currency: "USD",
      free: false,
      overage_policy: "allow",
      overage_rate: "0.012",
      overage_limit: "500",
      rate_limit_tier: "pro",
      rollover_cap: "100",
      status: "active",
      replay: false,
    });
    expect((await t.op("POST", "/v1/plans", body)).status).toBe(200);
    const conflict = await t.op("POST", "/v1/plans", { ...body, monthly_allowance: "3000" });
    expect([conflict.status, conflict.body.error.code]).toEqual([409, "idempotency_conflict"]);
    for (const [patch, field] of [
      [{ monthly_allowance: "-5" }, "monthly_allowance"],
      [{ monthly_allowance: "1e400" }, "monthly_allowance"],
      [{ overage_rate: "abc" }, "overage_rate"],
      [{ price: "-1" }, "price"],
      [{ currency: "usd" }, "currency"],
      [{ overage_policy: "block", overage_limit: "5" }, "overage_limit"],
    ] as const) {
      const r = await t.op("POST", "/v1/plans", { ...body, id: "bad", ...patch });
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.error.field ?? r.body.error.message).toContain(field);
    }
    expect((await t.op("GET", "/v1/plans/bad")).status).toBe(404);
    const upd = await t.op("PATCH", "/v1/plans/business", { monthly_allowance: "2500" });
    expect([upd.status, upd.body.monthly_allowance, upd.body.price]).toEqual([200, "2500", "99.00"]);
    expect((await t.op("GET", "/v1/plans")).body.data.map((p: { id: string }) => p.id)).toContain("business");
    await t.op("POST", "/v1/plans", { id: "old", name: "Old", monthly_allowance: 1 });
    expect((await t.op("DELETE", "/v1/plans/old")).body.status).toBe("archived");
    expect((await t.op("GET", "/v1/plans")).body.data.map((p: { id: string }) => p.id)).not.toContain("old");
    expect((await t.op("GET", "/v1/plans?include_archived=true")).body.data.length).toBeGreaterThanOrEqual(2);
    const unauth = await fetch(t.base + "/v1/plans");
    expect(unauth.status).toBe(401);
  });

  it("the seed's Credits API: last_reset_at, next_reset_date and credits_per_month come from the subscription, plus days_until_reset", async () => {
    t.clock.set(Date.UTC(2024, 0, 15, 12));
    await t.op("POST", "/v1/plans", { id: "seed2000", name: "Seed", monthly_allowance: 2000 });
    const acct = await account();
    const sub = await t.op("POST", "/v1/subscriptions", {
      account_id: acct,
      plan_id: "seed2000",
      anchor_at: "2024-01-01T00:00:00Z",
    });
    expect(sub.status, JSON.stringify(sub.body)).toBe(201);
    expect(sub.body).toMatchObject({
      period_start: "2024-01-01T00:00:00.000Z",
      period_end: "2024-02-01T00:00:00.000Z",
      days_until_reset: 17,
    });
    const key = (await t.op("POST", `/v1/accounts/${acct}/keys`, { name: "k", scopes: ["read"] })).body
      .secret;
    const credits = async () =>
      (await (
        await fetch(t.base + "/api/v1/credits", { headers: { authorization: `Bearer ${key}` } })
      ).json()) as Record<string, unknown>;
    expect(await credits()).toMatchObject({
      credits_balance: 2000,
      total_available_credits: 2000,
      last_reset_at: "2024-01-01T00:00:00Z",
      next_reset_date: "2024-02-01T00:00:00Z",
      credits_per_month: 2000,
      days_until_reset: 17,
    });
    // February 1: the read itself renews (lazily, no scheduler ran).
    t.clock.set(Date.UTC(2024, 1, 1, 0, 0, 5));
    expect(await credits()).toMatchObject({
      last_reset_at: "2024-02-01T00:00:00Z",
      next_reset_date: "2024-03-01T00:00:00Z",
      days_until_reset: 29,
      credits_balance: 2000,
    });
    // The operator's balance read renews lazily too.
    t.clock.set(Date.UTC(2024, 2, 1, 0, 0, 1));
    const bal = await t.op("GET", `/v1/accounts/${acct}/balance`);
    expect(bal.body.by_kind.subscription).toBe("2000");
    const after = await t.op("GET", `/v1/subscriptions/${sub.body.id}`);
    expect(after.body.period_start).toBe("2024-03-01T00:00:00.000Z");
    // Canceled at period end: no next reset.
    await t.op("POST", `/v1/subscriptions/${sub.body.id}/cancel`);
    expect(await credits()).toMatchObject({ next_reset_date: null, days_until_reset: null });
    const cur = await t.op("GET", `/v1/accounts/${acct}/subscription`);
    expect(cur.body).toMatchObject({ cancel_at_period_end: true, plan: { id: "seed2000" } });
  });

  it("subscribe, change plan, statements as JSON and CSV that reconcile, adjustments with reasons", async () => {
    const start = Date.UTC(2031, 2, 1);
    t.clock.set(start);
    await t.op("POST", "/v1/plans", {
      id: "voice",
      name: "Receptionist",
      monthly_allowance: 100,
      overage_policy: "allow",
      overage_rate: "0.10",
    });
    await t.op("POST", "/v1/plans", { id: "voice-plus", name: "Receptionist+", monthly_allowance: 300 });
    const acct = await account();
    const sub = (await t.op("POST", "/v1/subscriptions", { account_id: acct, plan_id: "voice" })).body;
    const twice = await t.op("POST", "/v1/subscriptions", { account_id: acct, plan_id: "voice" });
    expect([twice.status, twice.body.error.code, twice.body.error.field]).toEqual([
      409,
      "subscription_conflict",
      "account_id",
    ]);
    t.clock.advance(DAY);
    // 130 credits of calls (priced usage goes through the same engine; the rate card is not the point here).
    await t.engine.debit({ id: `${acct}-call`, account_id: acct, service: "x", amount: 130_000_000n });
    const adj = await t.op("POST", `/v1/accounts/${acct}/adjustments`, { amount: "10", reason: "goodwill" });
    expect([adj.status, adj.body.direction, adj.body.amount]).toEqual([201, "add", "10"]);
    const noReason = await t.op("POST", `/v1/accounts/${acct}/adjustments`, { amount: "10" });
    expect([noReason.status, noReason.body.error.code]).toEqual([400, "validation_error"]);
    const rm = await t.op("POST", `/v1/accounts/${acct}/adjustments`, { amount: "-4", reason: "correction" });
    expect([rm.status, rm.body.direction, rm.body.amount]).toEqual([201, "remove", "4"]);
    expect((await t.op("GET", `/v1/accounts/${acct}/adjustments`)).body.data).toHaveLength(2);

    // Upgrade on March 11: the March cycle ends there.
    t.clock.set(Date.UTC(2031, 2, 11));
    const ch = await t.op("POST", `/v1/subscriptions/${sub.id}/change`, { plan_id: "voice-plus" });
    expect([ch.status, ch.body.plan_id, ch.body.period_start]).toEqual([
      200,
      "voice-plus",
      "2031-03-11T00:00:00.000Z",
    ]);
    const cycles = (await t.op("GET", `/v1/accounts/${acct}/cycles`)).body.data;
    expect(cycles.map((c: { plan_id: string; period_end: string }) => [c.plan_id, c.period_end])).toEqual([
      ["voice-plus", "2031-04-11T00:00:00.000Z"],
      ["voice", "2031-03-11T00:00:00.000Z"],
    ]);
    const st = await t.op("GET", `/v1/accounts/${acct}/statement?period_start=2031-03-01T00:00:00.000Z`);
    expect(st.status, JSON.stringify(st.body)).toBe(200);
    expect(st.body).toMatchObject({
      plan_id: "voice",
      opening_balance: "0",
      granted_total: "110",
      used_total: "130",
      overage: "30",
      overage_billable: "30",
      overage_rate: "0.1",
      overage_charge: "3.00",
      removed: "4",
      // 100 + 10 granted; the usage took the 100 and went 30 into overage; 4 removed: 6 left.
      closing_balance: "6",
      reconciles: true,
    });
    expect(st.body.usage).toEqual([{ service: "x", credits: "130", count: 1 }]);
    const csv = await fetch(
      t.base + `/v1/accounts/${acct}/statement?period_start=2031-03-01T00:00:00.000Z&format=csv`,
      { headers: { authorization: "Bearer test-operator-key-0123456789" } },
    );
    expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
    const lines = (await csv.text()).trim().split("\r\n");
    expect(lines[0]).toBe("section,item,credits,count,amount,currency");
    expect(lines).toContain("usage,x,130,1,,");
    expect(lines).toContain("overage_charge,0.1,30,,3.00,USD");
    // Without period_start: the latest cycle (the Pro one, started at the change).
    const latest = await t.op("GET", `/v1/accounts/${acct}/statement`);
    expect([latest.status, latest.body.plan_id, latest.body.period_start]).toEqual([
      200,
      "voice-plus",
      "2031-03-11T00:00:00.000Z",
    ]);
    expect((await t.op("GET", `/v1/accounts/acct_nobody/statement`)).status).toBe(404);
    const notCycle = await t.op(
      "GET",
      `/v1/accounts/${acct}/statement?period_start=2031-03-02T00:00:00.000Z`,
    );
    expect([notCycle.status, notCycle.body.error.field]).toEqual([400, "period_start"]);
    const badTime = await t.op("GET", `/v1/accounts/${acct}/statement?period_start=yesterday`);
    expect(badTime.status).toBe(400);
  });

  it("seed 001 end to end: a receptionist plan, calls priced per started minute by the rate card, overage charged on the statement", async () => {
    const start = Date.UTC(2032, 0, 1);
    t.clock.set(start);
    // The voice service: 1 credit a minute, billed per started minute; outbound calls are free (a modifier).
    const card = (await t.op("GET", "/v1/rate-card")).body;
    const services = {
      ...card.services,
      ai_call: {
        unit: "second",
        price: "1",
        per: "60",
        increment: "60",
        modifiers: [{ key: "direction", value: "outbound", multiply: "0" }],
      },
    };
    const published = await t.op("PUT", "/v1/rate-card", { services });
    expect(published.status, JSON.stringify(published.body)).toBe(201);
    await t.op("POST", "/v1/plans", {
      id: "receptionist-100",
      name: "AI Receptionist",
      monthly_allowance: "100",
      price: "49",
      overage_policy: "allow",
      overage_rate: "0.25",
    });
    const acct = await account();
    await t.op("POST", "/v1/subscriptions", { account_id: acct, plan_id: "receptionist-100" });
    // 12 inbound calls of 9 min 10 s (10 started minutes each) and one outbound call (free).
    for (let i = 0; i < 12; i++) {
      t.clock.advance(DAY);
      const r = await t.op("POST", "/v1/usage", {
        id: `${acct}-in-${i}`,
        account_id: acct,
        service: "ai_call",
        quantity: 550,
      });
      expect([r.status, r.body.cost], JSON.stringify(r.body)).toEqual([201, "10"]);
    }
    const out = await t.op("POST", "/v1/usage", {
      id: `${acct}-out`,
      account_id: acct,
      service: "ai_call",
      quantity: 600,
      metadata: { direction: "outbound" },
    });
    expect(out.body.cost).toBe("0");
    t.clock.set(Date.UTC(2032, 1, 1, 0, 1));
    const st = await t.op("GET", `/v1/accounts/${acct}/statement?period_start=2032-01-01T00:00:00.000Z`);
    expect(st.body).toMatchObject({
      used_total: "120",
      overage: "20",
      overage_billable: "20",
      overage_rate: "0.25",
      overage_charge: "5.00",
      currency: "USD",
      expired: "0",
      closing_balance: "0",
      reconciles: true,
    });
    // The free outbound call moved no credits, so it is not in the journal the statement reads.
    expect(st.body.usage).toEqual([{ service: "ai_call", credits: "120", count: 12 }]);
    // February: a fresh allowance; the overage stays billed in January's statement.
    const feb = await t.op("GET", `/v1/accounts/${acct}/statement`);
    expect(feb.body).toMatchObject({
      period_start: "2032-02-01T00:00:00.000Z",
      granted_total: "100",
      overage: "0",
    });
  });

  it("the signup grant setting applies to accounts created afterwards, once", async () => {
    const put = await t.op("PUT", "/v1/settings/signup-grant", { amount: "250", expires_in_days: 14 });
    expect(put.body).toEqual({ amount: "250", expires_in_days: 14, enabled: true });
    t.clock.advance(1000);
    const r = await t.op("POST", "/v1/accounts", { id: "acct_signup_test" });
    expect(r.status).toBe(201);
    expect((await t.op("POST", "/v1/accounts", { id: "acct_signup_test" })).status).toBe(200);
    const grants = (await t.op("GET", "/v1/accounts/acct_signup_test/grants")).body.data;
    expect(grants.map((g: { kind: string; amount: string }) => [g.kind, g.amount])).toEqual([
      ["promotional", "250"],
    ]);
    await t.op("PUT", "/v1/settings/signup-grant", { amount: "0", expires_in_days: null });
    t.clock.advance(1000);
    const other = (await t.op("POST", "/v1/accounts", {})).body.id;
    expect((await t.op("GET", `/v1/accounts/${other}/grants`)).body.data).toEqual([]);
  });
});
