import { describe, expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { OPERATOR_KEY, useServer } from "./harness.ts";

describeEachStore("operator API", (kind) => {
  const t = useServer(kind);

  it("accounts: create, show with balance, list with pagination; idempotent by id", async () => {
    const created = await t.op("POST", "/v1/accounts", { overage_policy: "allow", overage_limit: "25.5" });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      overage_policy: "allow",
      overage_limit: "25.5",
      status: "active",
      replay: false,
    });
    expect(created.headers.get("x-request-id")).toMatch(/^req_/);
    const id = created.body.id as string;
    const again = await t.op("POST", "/v1/accounts", { id, overage_policy: "allow", overage_limit: 25.5 });
    expect(again.status).toBe(200);
    expect(again.body.replay).toBe(true);
    const conflict = await t.op("POST", "/v1/accounts", {
      id,
      overage_policy: "block",
      overage_limit: "25.5",
    });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error).toMatchObject({ code: "idempotency_conflict", field: "overage_policy" });
    const shown = await t.op("GET", `/v1/accounts/${id}`);
    expect(shown.body.balance).toMatchObject({ available: "0", held: "0", total: "0" });
    for (let i = 0; i < 3; i++) await t.op("POST", "/v1/accounts", {});
    const page1 = await t.op("GET", "/v1/accounts?limit=2");
    expect(page1.body.data).toHaveLength(2);
    const page2 = await t.op("GET", `/v1/accounts?limit=2&cursor=${page1.body.next_cursor}`);
    expect(page2.body.data[0].id > page1.body.data[1].id).toBe(true);
  });

  it("grants, balance, holds, capture, refund and audit over HTTP", async () => {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    const g = await t.op("POST", `/v1/accounts/${acct}/grants`, {
      kind: "subscription",
      amount: "100",
      expires_at: new Date(Date.now() + 86400_000).toISOString(),
    });
    expect(g.status).toBe(201);
    expect(g.body).toMatchObject({ kind: "subscription", amount: "100", remaining: "100", priority: 20 });
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "purchase", amount: 50 });
    const hold = await t.op("POST", "/v1/holds", { account_id: acct, amount: "30", ttl_seconds: 600 });
    expect(hold.status).toBe(201);
    expect((await t.op("GET", `/v1/accounts/${acct}/balance`)).body).toMatchObject({
      available: "120",
      held: "30",
      total: "150",
    });
    const cap = await t.op("POST", `/v1/holds/${hold.body.id}/capture`, {
      amount: "12.000001",
      service: "transcription",
    });
    expect(cap.status).toBe(200);
    expect(cap.body.usage).toMatchObject({ cost: "12.000001", service: "transcription" });
    const refund = await t.op("POST", `/v1/usage/${cap.body.usage.id}/refund`, { amount: "2" });
    expect(refund.status).toBe(201);
    expect((await t.op("GET", `/v1/accounts/${acct}/balance`)).body).toMatchObject({
      available: "139.999999",
      held: "0",
    });
    const usage = await t.op("GET", `/v1/accounts/${acct}/usage?service=transcription`);
    expect(usage.body.data).toHaveLength(1);
    const entries = await t.op("GET", `/v1/accounts/${acct}/entries?limit=100`);
    expect(entries.body.data.length).toBeGreaterThan(4);
    const audit = await t.op("GET", "/v1/audit");
    expect(audit.body.ok).toBe(true);
  });

  it("errors: one shape, a code, the field at fault, the request id; nothing changes", async () => {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    const cases: [string, string, unknown, number, string, string?][] = [
      [
        "POST",
        `/v1/accounts/${acct}/grants`,
        { kind: "purchase", amount: "-1" },
        400,
        "validation_error",
        "amount",
      ],
      [
        "POST",
        `/v1/accounts/${acct}/grants`,
        { kind: "purchase", amount: "1.0000001" },
        400,
        "validation_error",
        "amount",
      ],
      ["POST", `/v1/accounts/${acct}/grants`, { kind: "gold", amount: "1" }, 400, "validation_error", "kind"],
      [
        "POST",
        `/v1/accounts/${acct}/grants`,
        { kind: "purchase", amount: "1", bogus: 1 },
        400,
        "validation_error",
        "bogus",
      ],
      ["POST", `/v1/accounts/${acct}/grants`, { kind: "purchase" }, 400, "validation_error", "amount"],
      [
        "POST",
        `/v1/accounts/acct_nope/grants`,
        { kind: "purchase", amount: "1" },
        404,
        "not_found",
        "account_id",
      ],
      ["POST", "/v1/holds", { account_id: acct, amount: "5" }, 402, "insufficient_credits", "amount"],
      ["GET", `/v1/accounts/${acct}/usage?cursor=zzz`, undefined, 400, "validation_error", "cursor"],
      [
        "GET",
        `/v1/accounts/${acct}/usage?limit=5000`,
        undefined,
        400,
        "validation_error",
        "querystring.limit",
      ],
      [
        "GET",
        `/v1/accounts/${acct}/balance?at=yesterday`,
        undefined,
        400,
        "validation_error",
        "querystring.at",
      ],
      ["POST", "/v1/accounts", "{not json", 400, "validation_error", "body"],
      ["GET", "/v1/nowhere", undefined, 404, "not_found"],
    ];
    for (const [method, path, body, status, code, field] of cases) {
      const r = await t.op(method, path, body);
      expect(r.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(status);
      expect(r.body.error.code).toBe(code);
      expect(r.body.error.request_id).toBe(r.headers.get("x-request-id"));
      expect(typeof r.body.error.message).toBe("string");
      if (field) expect(r.body.error.field, `${method} ${path}`).toBe(field);
    }
    const insufficient = await t.op("POST", "/v1/holds", { account_id: acct, amount: "5" });
    // In credits, like every /v1 amount.
    expect(insufficient.body.error).toMatchObject({ shortfall: "5", available: "0" });
    expect((await t.op("GET", `/v1/accounts/${acct}/balance`)).body.total).toBe("0");
  });

  it("bodies over the limit are refused with 413", async () => {
    const big = JSON.stringify({ metadata: { x: "a".repeat(1024 * 1024 + 10) } });
    const r = await t.op("POST", "/v1/accounts", big);
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe("payload_too_large");
  });
});

describe("operator auth", () => {
  const t = useServer("sqlite");
  it("every /v1 route needs the operator key", async () => {
    // The right key first: a server that has seen it must still refuse every other token, including
    // ones of the same length and ones that differ only in their last character.
    const good = await fetch(`${t.base}/v1/accounts`, {
      headers: { authorization: `Bearer ${OPERATOR_KEY}` },
    });
    expect(good.status).toBe(200);
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong-key-wrong-key" },
      { authorization: `Bearer ${"x".repeat(OPERATOR_KEY.length)}` },
      { authorization: `Bearer ${OPERATOR_KEY.slice(0, -1)}!` },
      { authorization: `Bearer ${OPERATOR_KEY}x` },
      { authorization: "Basic abc" },
    ];
    for (const headers of attempts) {
      const r = await fetch(`${t.base}/v1/accounts`, { headers });
      expect(r.status).toBe(401);
      const body = (await r.json()) as { error: { code: string } };
      expect(body.error.code).toBe("unauthorized");
    }
  });
  it("health, metrics and the OpenAPI document are served without a key", async () => {
    expect((await fetch(`${t.base}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${t.base}/metrics`)).text();
    expect(metrics).toContain("tally_http_requests_total");
    const doc = (await (await fetch(`${t.base}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toContain("/v1/accounts/{id}/grants");
    expect((await fetch(`${t.base}/docs`)).status).toBeLessThan(400);
  });
});

describe("optional bodies", () => {
  const t = useServer("sqlite");
  it("voiding a grant needs no body", async () => {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    const g = (await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "promotional", amount: "3" })).body
      .id as string;
    const r = await fetch(`${t.base}/v1/grants/${g}/void`, {
      method: "POST",
      headers: { authorization: `Bearer ${OPERATOR_KEY}` },
    });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { status: string }).status).toBe("voided");
    expect((await t.op("GET", `/v1/accounts/${acct}/balance`)).body.total).toBe("0");
  });
});

describeEachStore("account status over HTTP", (kind) => {
  const t = useServer(kind);
  it("suspend refuses usage with 409 account_not_active; reactivate restores it; close is final", async () => {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "100" });
    const usage = (i: number) =>
      t.op("POST", "/v1/usage", {
        id: `st-${acct}-${i}`,
        account_id: acct,
        service: "video_download",
        quantity: 1,
      });
    expect((await t.op("POST", `/v1/accounts/${acct}/suspend`)).body.status).toBe("suspended");
    const refused = await usage(1);
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({
      code: "account_not_active",
      field: "account_id",
      status: "suspended",
    });
    expect((await t.op("POST", `/v1/accounts/${acct}/reactivate`)).body.status).toBe("active");
    expect((await usage(2)).status).toBe(201);
    expect((await t.op("POST", `/v1/accounts/${acct}/close`)).body.status).toBe("closed");
    expect((await t.op("POST", `/v1/accounts/${acct}/reactivate`)).status).toBe(409);
    expect((await usage(3)).status).toBe(409);
    expect((await t.op("GET", `/v1/accounts/${acct}`)).body).toMatchObject({
      status: "closed",
      balance: { available: "94" },
    });
  });
});
