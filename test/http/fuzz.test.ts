import fc from "fast-check";
import { expect, it } from "vitest";
import { describeEachStore } from "../support/stores.ts";
import { OPERATOR_KEY, useServer } from "./harness.ts";

/**
 * Thousands of random and malformed requests against every route: never a 5xx, never a crash, and the
 * seeded account's balance and the journal stay exactly as they were.
 */
describeEachStore("HTTP fuzz", (kind) => {
  const t = useServer(kind);

  it("random bodies, headers and query strings never cause a 5xx or change a balance", async () => {
    const acct = (await t.op("POST", "/v1/accounts", {})).body.id as string;
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "100" });
    const usage = await t.op("POST", "/v1/usage", {
      id: `fz-${acct}`,
      account_id: acct,
      service: "video_download",
      quantity: 1,
    });
    const hold = await t.op("POST", "/v1/holds", { account_id: acct, amount: "1" });
    const before = (await t.op("GET", `/v1/accounts/${acct}/balance`)).body;

    const doc = (await (await fetch(`${t.base}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    // Live streams (server-sent events) never end by design: test/sessions/stream.test.ts covers them.
    const routes = Object.entries(doc.paths)
      .filter(([path]) => !path.endsWith("/stream"))
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => ({ method: m.toUpperCase(), path })));
    expect(routes.length).toBeGreaterThan(15);
    // The real account (every change to it needs a well-formed body) and ids that exist nowhere. Real hold and
    // usage ids are left out: a release or full refund with any body is a valid request that changes balances.
    expect(usage.status).toBe(201);
    expect(hold.status).toBe(201);
    const ids = [acct, "hld_missing", "use_missing", "acct_missing", "", "%00", "..%2F..", "x".repeat(300)];

    const junk = fc.oneof(
      fc.json({ maxDepth: 3 }),
      fc.string({ maxLength: 200 }),
      fc.constantFrom(
        "{",
        "[]",
        "null",
        "1e999",
        '{"amount": "-1"}',
        '{"amount": 1e400}',
        '{"__proto__": {"x": 1}}',
        "\u0000",
      ),
      fc.anything({ maxDepth: 3 }).map((v) => {
        try {
          return JSON.stringify(v) ?? "null";
        } catch {
          return "null";
        }
      }),
    );
    const request = fc.record({
      route: fc.constantFrom(...routes),
      id: fc.constantFrom(...ids),
      body: junk,
      query: fc.oneof(
        fc.constant(""),
        fc.string({ maxLength: 40 }).map((s) => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
        fc.constantFrom("?limit=-1", "?limit=99999", "?cursor=%FF", "?at=notatime", "?from=1&to=0"),
      ),
      contentType: fc.constantFrom("application/json", "text/plain", "application/x-www-form-urlencoded", ""),
      auth: fc.constantFrom(
        `Bearer ${OPERATOR_KEY}`,
        `Bearer ${OPERATOR_KEY}`,
        "Bearer nope",
        "",
        "Basic Zm9vOmJhcg==",
      ),
    });

    let count = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const path = r.route.path.replace(/\{[^}]+\}/g, encodeURIComponent(r.id));
        const headers: Record<string, string> = {};
        if (r.auth) headers.authorization = r.auth;
        if (r.contentType) headers["content-type"] = r.contentType;
        const withBody = r.route.method !== "GET" && r.route.method !== "HEAD";
        const res = await fetch(t.base + path + r.query, {
          method: r.route.method,
          headers,
          ...(withBody ? { body: r.body } : {}),
        });
        const text = await res.text();
        count++;
        if (res.status >= 500)
          throw new Error(`${r.route.method} ${path}${r.query} ${r.body} → ${res.status} ${text}`);
        if (res.status >= 400) {
          const parsed = JSON.parse(text) as { error: { code: string; message: string; request_id: string } };
          expect(typeof parsed.error.code).toBe("string");
          expect(parsed.error.request_id).toMatch(/^req_/);
        }
      }),
      { numRuns: kind === "sqlite" ? 2500 : 1200 },
    );
    expect(count).toBeGreaterThan(1000);
    expect((await t.op("GET", "/healthz")).status).toBe(200);
    const after = (await t.op("GET", `/v1/accounts/${acct}/balance`)).body;
    expect({ ...after, at: null }).toEqual({ ...before, at: null });
    expect((await t.op("GET", "/v1/audit")).body.ok).toBe(true);
  });
});
