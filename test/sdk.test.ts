/**
 * The TypeScript SDK (sdk/): the committed types are what the app generates now, the example runs against a
 * real server, and every answer type the SDK declares itself (sdk/responses.ts) matches the real answers.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, expectTypeOf, it } from "vitest";
import { buildOpenApiDocument, SCHEMA_PATH } from "../scripts/generate-sdk.ts";
import {
  createCustomerClient,
  createOperatorClient,
  customerLogin,
  TallyApiError,
  type ErrorCode,
  type ResponseBody,
} from "../sdk/client.ts";
import { runExample } from "../sdk/example.ts";
import { FALLBACK_RESPONSES, type Account, type CreditsUsageRow, type Usage } from "../sdk/responses.ts";
import { ERROR_CODES } from "../src/domain/errors.ts";
import { OPERATOR_KEY, useServer } from "./http/harness.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

describe("sdk/schema.d.ts", () => {
  it("is what `npm run sdk` generates from the app now", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tally-sdk-"));
    try {
      const out = join(dir, "schema.d.ts");
      await run(process.execPath, ["--import", "tsx", "scripts/generate-sdk.ts", "--out", out], {
        cwd: ROOT,
        timeout: 60_000,
      });
      const fresh = readFileSync(out, "utf8");
      const committed = readFileSync(SCHEMA_PATH, "utf8");
      // On failure: run `npm run sdk` and commit sdk/schema.d.ts with the route change.
      expect(committed === fresh, "sdk/schema.d.ts is stale: run `npm run sdk`").toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("has types for every route the app serves, and the fallbacks name only real routes", async () => {
    const doc = await buildOpenApiDocument();
    const schema = readFileSync(SCHEMA_PATH, "utf8");
    for (const path of Object.keys(doc.paths ?? {})) expect(schema).toContain(`"${path}": {`);
    for (const [path, methods] of Object.entries(FALLBACK_RESPONSES))
      for (const method of Object.keys(methods))
        expect(
          (doc.paths?.[path] as Record<string, unknown> | undefined)?.[method],
          `${method} ${path}`,
        ).toBeDefined();
  });

  it("types requests and answers from the document (checked by tsc)", () => {
    expectTypeOf<ResponseBody<"/v1/accounts", "post">>().toEqualTypeOf<Account & { replay: boolean }>();
    expectTypeOf<ResponseBody<"/v1/accounts/{id}/usage", "get">["data"][number]>().toEqualTypeOf<Usage>();
    expectTypeOf<ResponseBody<"/api/v1/credits/usage", "get">>().toEqualTypeOf<CreditsUsageRow[]>();
    expectTypeOf<ResponseBody<"/api/v1/auth/token", "post">["access_token"]>().toEqualTypeOf<string>();
    expectTypeOf<ResponseBody<"/v1/accounts/{id}/keys", "post">["secret"]>().toEqualTypeOf<string>();
  });

  it("knows the API's error codes", () => {
    expectTypeOf<ErrorCode>().toEqualTypeOf<(typeof ERROR_CODES)[number]>();
  });
});

describe("the SDK against a real server [sqlite]", () => {
  const t = useServer("sqlite");

  it("runs the example: account, grant, estimate, usage, balance, history, the customer's view", async () => {
    const lines: string[] = [];
    const r = await runExample({ baseUrl: t.base, operatorKey: OPERATOR_KEY, log: (l) => lines.push(l) });
    expect(r.account.status).toBe("active");
    expect(r.grant).toMatchObject({
      kind: "promotional",
      amount: "10000",
      remaining: "10000",
      replay: false,
    });
    expect(r.estimate.cost).toBe("990");
    expect(r.transcription).toMatchObject({ cost: "990", replay: false, pricing: { cost: "990" } });
    expect(r.llm.cost).toBe("1.125");
    expect(r.again).toMatchObject({ id: r.transcription.id, cost: "990", replay: true });
    expect(r.balance).toMatchObject({ available: "9008.875", held: "0", total: "9008.875" });
    expect(r.history.map((u) => [u.service, u.cost])).toEqual([
      ["llm_chat", "1.125"],
      ["transcription", "990"],
    ]);
    expect(r.key.scopes).toEqual(["read"]);
    expect(r.credits).toMatchObject({ total_available_credits: 9008.875, total_credits_used: 991.125 });
    expect(r.rows.map((x) => [x.service_type, x.credits_used, x.audio_duration])).toEqual([
      ["llm_chat", 1.125, 0],
      ["transcription", 990, 90],
    ]);
    expect(r.refusal).toMatchObject({ status: 403, code: "forbidden" });
    expect(lines.length).toBeGreaterThan(8);

    // The example revoked its key.
    const revoked = createCustomerClient({ baseUrl: t.base, credential: r.key.secret });
    await expect(revoked.get("/api/v1/credits")).rejects.toMatchObject({ status: 401, code: "unauthorized" });
  });

  it("answers every route as sdk/responses.ts declares", async () => {
    const op = createOperatorClient({ baseUrl: t.base, operatorKey: OPERATOR_KEY });
    const seen = new Set<string>();
    const check = <T>(method: string, path: string, body: T): T => {
      const schema = (FALLBACK_RESPONSES as Record<string, Record<string, TSchema>>)[path]?.[method];
      expect(schema, `${method} ${path} has a fallback`).toBeDefined();
      const errors = [...Value.Errors(schema!, body)].map((e) => `${e.path}: ${e.message}`);
      expect(errors, `${method.toUpperCase()} ${path}: ${JSON.stringify(body).slice(0, 400)}`).toEqual([]);
      seen.add(`${method} ${path}`);
      return body;
    };

    const acct = check(
      "post",
      "/v1/accounts",
      await op.post("/v1/accounts", { body: { metadata: { a: 1 } } }),
    );
    const id = acct.id;
    check("get", "/v1/accounts", await op.get("/v1/accounts", { query: { limit: 2 } }));
    check(
      "post",
      "/v1/accounts/{id}/grants",
      await op.post("/v1/accounts/{id}/grants", {
        params: { id },
        body: {
          kind: "subscription",
          amount: "5000",
          expires_at: new Date(Date.now() + 86400_000).toISOString(),
        },
      }),
    );
    const extra = await op.post("/v1/accounts/{id}/grants", {
      params: { id },
      body: { kind: "adjustment", amount: 1 },
    });
    check(
      "post",
      "/v1/grants/{id}/void",
      await op.post("/v1/grants/{id}/void", { params: { id: extra.id }, body: {} }),
    );
    check("get", "/v1/accounts/{id}/grants", await op.get("/v1/accounts/{id}/grants", { params: { id } }));
    const used = check(
      "post",
      "/v1/usage",
      await op.post("/v1/usage", {
        body: {
          id: `${id}-music`,
          account_id: id,
          service: "music_generation",
          quantity: 45,
          metadata: { quality: "premium" },
        },
      }),
    );
    expect(used.cost).toBe("3960");
    check(
      "post",
      "/v1/usage/batch",
      await op.post("/v1/usage/batch", {
        body: {
          events: [
            { id: `${id}-b1`, account_id: id, service: "voice_cloning_training", metadata: { voice: "v1" } },
            { id: `${id}-b2`, account_id: id, service: "no_such_service", quantity: 1 },
          ],
        },
      }),
    );
    check("get", "/v1/usage/{id}", await op.get("/v1/usage/{id}", { params: { id: used.id } }));
    check(
      "post",
      "/v1/usage/{id}/refund",
      await op.post("/v1/usage/{id}/refund", {
        params: { id: used.id },
        body: { amount: "0.5", reason: "test" },
      }),
    );
    const hold = check(
      "post",
      "/v1/holds",
      await op.post("/v1/holds", { body: { account_id: id, amount: 100 } }),
    );
    check("get", "/v1/holds/{id}", await op.get("/v1/holds/{id}", { params: { id: hold.id } }));
    check(
      "post",
      "/v1/holds/{id}/capture",
      await op.post("/v1/holds/{id}/capture", {
        params: { id: hold.id },
        body: { amount: 40, service: "translation" },
      }),
    );
    const hold2 = await op.post("/v1/holds", { body: { account_id: id, amount: 10, ttl_seconds: 60 } });
    check(
      "post",
      "/v1/holds/{id}/release",
      await op.post("/v1/holds/{id}/release", { params: { id: hold2.id } }),
    );
    check("get", "/v1/accounts/{id}", await op.get("/v1/accounts/{id}", { params: { id } }));
    check("get", "/v1/accounts/{id}/balance", await op.get("/v1/accounts/{id}/balance", { params: { id } }));
    check("get", "/v1/accounts/{id}/usage", await op.get("/v1/accounts/{id}/usage", { params: { id } }));
    check(
      "get",
      "/v1/accounts/{id}/entries",
      await op.get("/v1/accounts/{id}/entries", { params: { id }, query: { limit: 3 } }),
    );
    check(
      "post",
      "/v1/estimate",
      await op.post("/v1/estimate", {
        body: {
          service: "llm_chat",
          quantities: { input_tokens: 1000, output_tokens: 1000 },
          metadata: { model: "large" },
        },
      }),
    );
    const payg = check("get", "/v1/payg", await op.get("/v1/payg"));
    check("put", "/v1/payg", await op.put("/v1/payg", { body: payg }));
    const card = check("get", "/v1/rate-card", await op.get("/v1/rate-card"));
    check("get", "/v1/rate-card/versions", await op.get("/v1/rate-card/versions"));

    // The customer API, with a key of the account's own.
    const key = await op.post("/v1/accounts/{id}/keys", {
      params: { id },
      body: { name: "sdk-test", scopes: ["read", "usage", "manage"] },
    });
    const me = createCustomerClient({ baseUrl: t.base, credential: key.secret });
    check("get", "/api/v1/credits", await me.get("/api/v1/credits"));
    check("get", "/api/v1/credits/usage", await me.get("/api/v1/credits/usage", { query: { limit: 2 } }));
    check("get", "/api/v1/credits/multipliers", await me.get("/api/v1/credits/multipliers"));
    check("get", "/api/v1/credits/payg/info", await me.get("/api/v1/credits/payg/info"));
    check(
      "post",
      "/api/v1/credits/payg/create-checkout-session",
      await me.post("/api/v1/credits/payg/create-checkout-session", { body: { amount_usd: 10 } }),
    );

    // Publishing the same services again (a new version) and the account's life cycle come last.
    check("put", "/v1/rate-card", await op.put("/v1/rate-card", { body: { services: card.services } }));
    const other = await op.post("/v1/accounts", { body: {} });
    const o = { params: { id: other.id } };
    check("post", "/v1/accounts/{id}/suspend", await op.post("/v1/accounts/{id}/suspend", o));
    check("post", "/v1/accounts/{id}/reactivate", await op.post("/v1/accounts/{id}/reactivate", o));
    const closed = check("post", "/v1/accounts/{id}/close", await op.post("/v1/accounts/{id}/close", o));
    expect(closed.status).toBe("closed");
    const audit = check("get", "/v1/audit", await op.get("/v1/audit"));
    expect(audit.ok).toBe(true);

    const declared = Object.entries(FALLBACK_RESPONSES).flatMap(([p, ms]) =>
      Object.keys(ms).map((m) => `${m} ${p}`),
    );
    expect([...seen].sort()).toEqual(declared.sort());
  });

  it("pages through lists, logs in with a password, and throws the API's errors", async () => {
    const op = createOperatorClient({ baseUrl: t.base, operatorKey: OPERATOR_KEY });
    const { id } = await op.post("/v1/accounts", { body: {} });
    await op.post("/v1/accounts/{id}/grants", { params: { id }, body: { kind: "purchase", amount: "100" } });
    for (let i = 0; i < 5; i++)
      await op.post("/v1/usage", {
        body: { id: `${id}-v${i}`, account_id: id, service: "video_download", quantity: 1 },
      });

    const all = [];
    for await (const u of op.paginate("/v1/accounts/{id}/usage", { params: { id }, query: { limit: 2 } }))
      all.push(u.id);
    expect(all).toEqual([4, 3, 2, 1, 0].map((i) => `${id}-v${i}`));

    await op.post("/v1/accounts/{id}/users", {
      params: { id },
      body: { email: `${id}@example.com`, password: "correct horse battery" },
    });
    const { client: me, token } = await customerLogin({
      baseUrl: t.base,
      email: `${id}@example.com`,
      password: "correct horse battery",
    });
    expect(token.token_type).toBe("bearer");
    const rows = [];
    for await (const row of me.paginate("/api/v1/credits/usage", { query: { limit: 2 } })) rows.push(row.id);
    expect(rows).toEqual(all);
    expect((await me.get("/api/v1/credits")).payg_balance).toBe(70);

    // Errors: the status, the code and the field of the one error shape.
    const short = await op
      .post("/v1/usage", {
        body: { id: `${id}-big`, account_id: id, service: "transcription", quantity: 3600 },
      })
      .catch((e: unknown) => e);
    expect(short).toBeInstanceOf(TallyApiError);
    expect(short).toMatchObject({ status: 402, code: "insufficient_credits", field: "amount" });
    expect((short as TallyApiError).requestId).toMatch(/^req_/);
    await expect(op.get("/v1/accounts/{id}", { params: { id: "acct_nobody" } })).rejects.toMatchObject({
      status: 404,
      code: "not_found",
    });
    await expect(
      op.post("/v1/usage", {
        body: { id: `${id}-bad`, account_id: id, service: "transcription", quantity: -1 },
      }),
    ).rejects.toMatchObject({ status: 400, code: "validation_error", field: "quantity" });
    const wrong = createOperatorClient({ baseUrl: t.base, operatorKey: "not-the-operator-key" });
    await expect(wrong.get("/v1/accounts")).rejects.toMatchObject({ status: 401, code: "unauthorized" });
  });
});
