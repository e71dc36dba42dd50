/**
 * The HTTP surface of events, webhooks, alerts, budgets and analytics on a real server (both stores), and
 * the shared customer security suite on every customer route.
 */
import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { OPERATOR_KEY, useServer } from "../http/harness.ts";
import { assertCustomerRouteSecurity, type SecurityCredentials } from "../http/security-suite.ts";

describeEachStore("events, webhooks, alerts, budgets, analytics over HTTP", (kind) => {
  const t = useServer(kind);

  async function customer() {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "purchase", amount: 1000 });
    const key = async (scopes: string[]) =>
      (await t.op("POST", `/v1/accounts/${acct}/keys`, { name: scopes.join("+"), scopes })).body as {
        id: string;
        secret: string;
      };
    return { acct, key };
  }
  const usage = (acct: string, i: number, extra: Record<string, unknown> = {}) =>
    t.op("POST", "/v1/usage", {
      id: `${acct}-u${i}`,
      account_id: acct,
      service: "translation",
      quantity: 10,
      ...extra,
    });

  it("budgets: a key's cap refuses usage with budget_exceeded (402) while credits remain", async () => {
    const { acct, key } = await customer();
    const k = await key(["usage"]);
    const b = await t.op("POST", `/v1/accounts/${acct}/budgets`, { limit: "300", api_key_id: k.id });
    expect(b.status, JSON.stringify(b.body)).toBe(201);
    expect(b.body).toMatchObject({ limit: "300", spent: "0", api_key_id: k.id });
    let i = 0;
    let refused: { status: number; body: { error: { code: string; budget_id: string } } } | null = null;
    for (; i < 20; i++) {
      const r = await usage(acct, i, { api_key_id: k.id });
      if (r.status !== 201) {
        refused = r;
        break;
      }
    }
    expect(refused?.status).toBe(402);
    expect(refused?.body.error.code).toBe("budget_exceeded");
    expect(refused?.body.error.budget_id).toBe(b.body.id);
    expect((await usage(acct, 100)).status).toBe(201); // not through the key
    const got = await t.op("GET", `/v1/accounts/${acct}/budgets/${b.body.id}`);
    expect(Number(got.body.spent)).toBeLessThanOrEqual(300);
    expect(got.body.cycle_start_at).toMatch(/-01T00:00:00.000Z$/);
    expect((await t.op("POST", `/v1/accounts/${acct}/budgets`, { limit: "0" })).body.error.field).toBe(
      "limit",
    );
    expect(
      (await t.op("PATCH", `/v1/accounts/${acct}/budgets/${b.body.id}`, { limit: "5000" })).body.limit,
    ).toBe("5000");
    expect((await t.op("DELETE", `/v1/accounts/${acct}/budgets/${b.body.id}`)).status).toBe(204);
  });

  it("analytics for an account and operator-wide; events by cursor", async () => {
    const { acct } = await customer();
    for (let i = 0; i < 3; i++) expect((await usage(acct, i)).status).toBe(201);
    const a = await t.op("GET", `/v1/accounts/${acct}/analytics`);
    expect(a.status, JSON.stringify(a.body)).toBe(200);
    expect(a.body.period.used).toBe(a.body.by_service[0].credits);
    expect(a.body.by_service[0]).toMatchObject({ service: "translation", events: 3, quantity: 30 });
    expect(a.body.forecast.rate_per_hour).toMatch(/^[0-9.]+$/);
    expect(a.body.daily.at(-1).date).toBe(new Date(t.clock.now()).toISOString().slice(0, 10));
    const o = await t.op("GET", "/v1/analytics?top=5");
    expect(o.status).toBe(200);
    expect(o.body.top_accounts.length).toBeGreaterThan(0);
    expect(
      (await t.op("GET", "/v1/analytics?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z")).body.error.field,
    ).toBe("to");
    // Events: page through with the cursor; it keeps working as events arrive.
    const p1 = await t.op("GET", `/v1/events?account_id=${acct}&limit=1`);
    expect(p1.body.data).toHaveLength(1);
    expect(p1.body.data[0].type).toBe("account.created");
    const p2 = await t.op("GET", `/v1/events?account_id=${acct}&limit=10&cursor=${p1.body.next_cursor}`);
    expect(p2.body.data.map((e: { type: string }) => e.type)).toEqual(["grant.created"]);
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "promotional", amount: 1 });
    const p3 = await t.op("GET", `/v1/events?account_id=${acct}&cursor=${p2.body.next_cursor}`);
    expect(p3.body.data.map((e: { type: string }) => e.type)).toEqual(["grant.created"]);
    expect((await t.op("GET", "/v1/events?cursor=nope")).body.error.field).toBe("cursor");
  });

  it("alerts and webhooks routes; the customer security suite on every customer route", async () => {
    const { acct, key } = await customer();
    const other = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    const otherKey = (
      await t.op("POST", `/v1/accounts/${other}/keys`, { scopes: ["read", "usage", "manage"] })
    ).body.secret;
    const full = await key(["read", "usage", "manage"]);
    const reader = await key(["read"]);
    const usageOnly = await key(["usage"]);
    const revoked = await key(["read"]);
    await t.op("POST", `/v1/keys/${revoked.id}/revoke`);
    const expired = (
      await t.customerAuth.signToken(
        { account_id: acct, user_id: "usr_x", scopes: ["read", "usage", "manage"] },
        { issuedAt: t.clock.now() - 7200_000 },
      )
    ).access_token;
    const token = (
      await t.customerAuth.signToken({
        account_id: acct,
        user_id: "usr_y",
        scopes: ["read", "usage", "manage"],
      })
    ).access_token;
    const creds: SecurityCredentials = {
      own: full.secret,
      other: otherKey,
      revoked: revoked.secret,
      expired,
      token,
      operator: OPERATOR_KEY,
    };
    const as = (secret: string) => async (method: string, path: string, body?: unknown) => {
      const res = await fetch(t.base + path, {
        method,
        headers: {
          authorization: `Bearer ${secret}`,
          ...(body ? { "content-type": "application/json" } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    const me = as(full.secret);
    // Operator alert on the account; the customer adds its own and sees both.
    const opRule = await t.op("POST", `/v1/accounts/${acct}/alerts`, {
      kind: "balance_below",
      amount: "2000",
    });
    expect(opRule.status, JSON.stringify(opRule.body)).toBe(201);
    expect(opRule.body).toMatchObject({
      kind: "balance_below",
      amount: "2000",
      state: "fired",
      crossings: 1,
    });
    const mine = await me("POST", "/api/v1/alerts", {
      kind: "usage_above_percent",
      percent: 80,
      severity: "critical",
    });
    expect(mine.status, JSON.stringify(mine.body)).toBe(201);
    expect((await me("GET", "/api/v1/alerts")).body.data).toHaveLength(2);
    expect((await me("POST", "/api/v1/alerts", { kind: "runout_within", hours: 0 })).body.error.field).toBe(
      "hours",
    );
    const fired = await t.op("GET", `/v1/events?account_id=${acct}&type=alert.triggered`);
    expect(fired.body.data.map((e: { data: { rule_id: string } }) => e.data.rule_id)).toEqual([
      opRule.body.id,
    ]);
    // Webhooks: the customer's endpoint must be public; the operator's may be anything.
    const hook = await me("POST", "/api/v1/webhooks", {
      url: "https://hooks.example.com/tally",
      event_types: ["alert.*"],
    });
    expect(hook.status, JSON.stringify(hook.body)).toBe(201);
    expect(hook.body.secret).toMatch(/^whsec_/);
    expect((await me("GET", `/api/v1/webhooks/${hook.body.id}`)).body.secret).toBeUndefined();
    expect(
      (await me("POST", "/api/v1/webhooks", { url: "http://10.0.0.1/x", event_types: ["*"] })).body.error
        .field,
    ).toBe("url");
    const opHook = await t.op("POST", "/v1/webhooks", { url: "http://127.0.0.1:9/x", event_types: ["*"] });
    expect(opHook.status).toBe(201);
    expect((await t.op("GET", `/v1/webhooks/${opHook.body.id}/deliveries`)).body.data).toEqual([]);
    const disabled = await t.op("PATCH", `/v1/webhooks/${opHook.body.id}`, { status: "disabled" });
    expect(disabled.body.status).toBe("disabled");
    expect((await t.op("DELETE", `/v1/webhooks/${opHook.body.id}`)).status).toBe(204);

    const snapshot = async () => ({
      rules: (await t.op("GET", `/v1/accounts/${acct}/alerts`)).body,
      hooks: (await t.op("GET", `/v1/webhooks?account_id=${acct}`)).body,
    });
    const markers = [acct, mine.body.id, hook.body.id];
    const suite = (
      route: Parameters<typeof assertCustomerRouteSecurity>[1],
      lacking: string,
      ownStatus?: number,
    ) =>
      assertCustomerRouteSecurity(
        t.base,
        { markers, ...route },
        { ...creds, lacking },
        { snapshot, ownStatus },
      );
    await suite(
      { method: "GET", path: "/api/v1/alerts", scope: "read", foreign: "own_data" },
      usageOnly.secret,
      200,
    );
    await suite(
      { method: "GET", path: `/api/v1/alerts/${mine.body.id}`, scope: "read", foreign: "not_found" },
      usageOnly.secret,
      200,
    );
    await suite(
      {
        method: "POST",
        path: "/api/v1/alerts",
        body: { kind: "depleted" },
        scope: "manage",
        foreign: "own_data",
      },
      reader.secret,
    );
    await suite(
      { method: "DELETE", path: `/api/v1/alerts/${mine.body.id}`, scope: "manage", foreign: "not_found" },
      reader.secret,
    );
    await suite(
      { method: "GET", path: "/api/v1/webhooks", scope: "read", foreign: "own_data" },
      usageOnly.secret,
      200,
    );
    await suite(
      { method: "GET", path: `/api/v1/webhooks/${hook.body.id}`, scope: "read", foreign: "not_found" },
      usageOnly.secret,
      200,
    );
    await suite(
      {
        method: "GET",
        path: `/api/v1/webhooks/${hook.body.id}/deliveries`,
        scope: "read",
        foreign: "not_found",
      },
      usageOnly.secret,
      200,
    );
    await suite(
      {
        method: "PATCH",
        path: `/api/v1/webhooks/${hook.body.id}`,
        body: { status: "disabled" },
        scope: "manage",
        foreign: "not_found",
      },
      reader.secret,
    );
    await suite(
      {
        method: "POST",
        path: "/api/v1/webhooks",
        body: { url: "https://x.example.com/h", event_types: ["*"] },
        scope: "manage",
        foreign: "own_data",
      },
      reader.secret,
    );
    await suite(
      { method: "DELETE", path: `/api/v1/webhooks/${hook.body.id}`, scope: "manage", foreign: "not_found" },
      reader.secret,
    );
    await suite(
      { method: "GET", path: "/api/v1/analytics", scope: "read", foreign: "own_data" },
      usageOnly.secret,
      200,
    );
  });

  it("the live stream (server-sent events) shows new events of an account as they commit", async () => {
    const { acct } = await customer();
    const ctrl = new AbortController();
    const res = await fetch(`${t.base}/v1/events/stream?account_id=${acct}`, {
      headers: { authorization: `Bearer ${OPERATOR_KEY}` },
      signal: ctrl.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = res.body!.getReader();
    let text = "";
    await reader.read(); // the opening comment: the stream is listening
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "promotional", amount: 7 });
    const deadline = Date.now() + 5000;
    while (!text.includes("event: grant.created") && Date.now() < deadline) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    ctrl.abort();
    expect(text).toContain("event: grant.created");
    const data = JSON.parse(
      text
        .split("\n")
        .find((l) => l.startsWith("data: "))!
        .slice(6),
    );
    expect(data).toMatchObject({ type: "grant.created", account_id: acct });
    // Only events after the stream opened: the account's creation is not replayed.
    expect(text).not.toContain("account.created");
  });

  it("analytics follow the subscription's period and allowance when the account has one", async () => {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    const plan = `alerts-plan-${acct.slice(-6)}`;
    expect((await t.op("POST", "/v1/plans", { id: plan, name: "P", monthly_allowance: 1000 })).status).toBe(
      201,
    );
    const anchor = new Date(t.clock.now() - 3 * 86400_000).toISOString();
    const sub = await t.op("POST", "/v1/subscriptions", {
      account_id: acct,
      plan_id: plan,
      anchor_at: anchor,
    });
    expect(sub.status, JSON.stringify(sub.body)).toBe(201);
    expect((await usage(acct, 1)).status).toBe(201);
    const a = await t.op("GET", `/v1/accounts/${acct}/analytics`);
    expect(a.status, JSON.stringify(a.body)).toBe(200);
    expect(a.body.period.start_at).toBe(sub.body.period_start);
    expect(a.body.period.end_at).toBe(sub.body.period_end);
    expect(a.body.period).toMatchObject({ allowance: "1000", allowance_source: "subscription_grants" });
    expect(Number(a.body.period.usage_vs_allowance)).toBeCloseTo(Number(a.body.period.used) / 1000, 6);
  });
});
