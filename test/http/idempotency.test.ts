import Fastify, { type FastifyInstance } from "fastify";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorHandler } from "../../src/http/errors.ts";
import { DEFAULT_TTL_MS, idempotency, requestHash } from "../../src/http/idempotency.ts";
import { idempotencyStoreFor } from "../../src/store/idempotency-store.ts";
import { PostgresIdempotencyStore } from "../../src/store/postgres/idempotency-store.ts";
import type { PostgresStore } from "../../src/store/postgres/store.ts";
import type { SqliteStore } from "../../src/store/sqlite/store.ts";
import type { Store } from "../../src/store/types.ts";
import { describeEachStore } from "../support/stores.ts";
import { OPERATOR_KEY, useServer } from "./harness.ts";

interface Raw {
  status: number;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  headers: Headers;
}

type Row = Record<string, unknown>;

async function query(store: Store, sql: string): Promise<Row[]> {
  if (store.dialect === "sqlite") return (store as SqliteStore).db.prepare(sql).all() as Row[];
  return (await (store as PostgresStore).pool.query(sql)).rows as Row[];
}

async function count(store: Store, table: string, where = "TRUE"): Promise<number> {
  const rows = await query(store, `SELECT COUNT(*) AS n FROM ${table} WHERE ${where}`);
  return Number(rows[0]!.n);
}

/** Every idempotency record, as text, straight from the database. */
async function rawRecords(store: Store): Promise<string> {
  const rows = await query(store, "SELECT * FROM idempotency_keys");
  return JSON.stringify(rows, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
}

const newKey = () => `idem-${randomUUID()}`;

describeEachStore("Idempotency-Key", (kind) => {
  const t = useServer(kind);

  /** A request with the raw answer text, so replays can be compared byte for byte. */
  async function send(
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string> = {},
    credential = OPERATOR_KEY,
  ): Promise<Raw> {
    const res = await fetch(t.base + path, {
      method,
      headers: {
        ...(credential ? { authorization: `Bearer ${credential}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, text, body: parsed, headers: res.headers };
  }

  const post = (path: string, body: unknown, key: string, credential?: string) =>
    send("POST", path, body, { "idempotency-key": key }, credential);

  async function account(): Promise<string> {
    return (await t.op("POST", "/v1/accounts", {})).body.id as string;
  }

  const balance = async (id: string) => (await t.op("GET", `/v1/accounts/${id}/balance`)).body;

  function expectReplay(first: Raw, again: Raw): void {
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.status).toBe(first.status);
    expect(again.text).toBe(first.text);
    expect(again.headers.get("content-type")).toBe(first.headers.get("content-type"));
    // Each request keeps its own request id.
    expect(again.headers.get("x-request-id")).not.toBe(first.headers.get("x-request-id"));
  }

  it("account creation: a replay answers the first answer byte for byte and creates nothing", async () => {
    const key = newKey();
    const first = await post("/v1/accounts", { metadata: { plan: "pro" } }, key);
    expect(first.status).toBe(201);
    const accounts = await count(t.store, "accounts");
    const again = await post("/v1/accounts", { metadata: { plan: "pro" } }, key);
    expectReplay(first, again);
    // Same JSON with keys in another order and other whitespace is the same request.
    const reordered = await post("/v1/accounts", ' { "metadata" : {"plan":"pro"} } ', key);
    expectReplay(first, reordered);
    expect(await count(t.store, "accounts")).toBe(accounts);
    // Without the header nothing changes: each request creates an account.
    await t.op("POST", "/v1/accounts", {});
    await t.op("POST", "/v1/accounts", {});
    expect(await count(t.store, "accounts")).toBe(accounts + 2);
  });

  it("grant, usage and hold: replays change no balance, count or journal", async () => {
    const acct = await account();
    const gKey = newKey();
    const grant = await post(`/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "50" }, gKey);
    expect(grant.status).toBe(201);
    const entries = await count(t.store, "postings");
    expectReplay(grant, await post(`/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "50" }, gKey));
    expect(await count(t.store, "grants", `account_id = '${acct}'`)).toBe(1);

    const uKey = newKey();
    const event = { id: `evt-${randomUUID()}`, account_id: acct, service: "video_download", quantity: 1 };
    const usage = await post("/v1/usage", event, uKey);
    expect(usage.status).toBe(201);
    expect(usage.body.replay).toBe(false);
    const afterUsage = await balance(acct);
    const usageReplay = await post("/v1/usage", event, uKey);
    expectReplay(usage, usageReplay);
    // The first answer, exactly: the event's own idempotency would have said 200 and replay: true.
    expect(usageReplay.body.replay).toBe(false);
    expect((await t.op("POST", "/v1/usage", event)).body.replay).toBe(true);

    const hKey = newKey();
    const hold = await post("/v1/holds", { account_id: acct, amount: "5", ttl_seconds: 600 }, hKey);
    expect(hold.status).toBe(201);
    expectReplay(hold, await post("/v1/holds", { account_id: acct, amount: "5", ttl_seconds: 600 }, hKey));
    expect(await count(t.store, "holds", `account_id = '${acct}'`)).toBe(1);
    const after = await balance(acct);
    expect(after).toMatchObject({ held: "5", total: afterUsage.total });
    expect(BigInt(await count(t.store, "postings"))).toBeGreaterThan(BigInt(entries));
    const postings = await count(t.store, "postings");
    // One more round of replays: nothing at all is written.
    await post(`/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "50" }, gKey);
    await post("/v1/usage", event, uKey);
    await post("/v1/holds", { account_id: acct, amount: "5", ttl_seconds: 600 }, hKey);
    expect(await count(t.store, "postings")).toBe(postings);
    expect(await balance(acct)).toEqual(after);
  });

  it("the same key with another body or URL is 409 idempotency_conflict and changes nothing", async () => {
    const a = await account();
    const b = await account();
    const key = newKey();
    expect((await post(`/v1/accounts/${a}/grants`, { kind: "purchase", amount: "10" }, key)).status).toBe(
      201,
    );
    const before = [await balance(a), await balance(b)];
    const otherBody = await post(`/v1/accounts/${a}/grants`, { kind: "purchase", amount: "11" }, key);
    expect(otherBody.status).toBe(409);
    expect(otherBody.body.error).toMatchObject({ code: "idempotency_conflict", field: "Idempotency-Key" });
    expect(otherBody.body.error.request_id).toMatch(/^req_/);
    expect(otherBody.headers.get("idempotent-replayed")).toBeNull();
    const otherPath = await post(`/v1/accounts/${b}/grants`, { kind: "purchase", amount: "10" }, key);
    expect(otherPath.status).toBe(409);
    expect(otherPath.body.error).toMatchObject({ code: "idempotency_conflict", field: "Idempotency-Key" });
    const otherQuery = await post(`/v1/accounts/${a}/grants?x=1`, { kind: "purchase", amount: "10" }, key);
    expect(otherQuery.status).toBe(409);
    expect([await balance(a), await balance(b)]).toEqual(before);
    // Another route is another operation: the key names a separate record there.
    const hold = await post("/v1/holds", { account_id: a, amount: "1" }, key);
    expect(hold.status).toBe(201);
    expect(hold.headers.get("idempotent-replayed")).toBeNull();
  });

  it("keys are scoped per caller: customers and the operator never see each other's answers", async () => {
    const a = await account();
    const b = await account();
    const secretOf = async (acct: string, scopes: string[]) =>
      (await t.op("POST", `/v1/accounts/${acct}/keys`, { scopes })).body.secret as string;
    const all = ["read", "usage", "manage"];
    const [a1, a2, aRead, b1] = [
      await secretOf(a, all),
      await secretOf(a, all),
      await secretOf(a, ["read"]),
      await secretOf(b, all),
    ];
    const path = "/api/v1/credits/payg/create-checkout-session";
    const key = newKey();
    const fromA = await post(path, { amount_usd: 10 }, key, a1);
    const fromB = await post(path, { amount_usd: 10 }, key, b1);
    expect(fromA.status).toBe(200);
    expect(fromB.status).toBe(200);
    expect(fromB.headers.get("idempotent-replayed")).toBeNull();
    expect(fromB.body.session_id).not.toBe(fromA.body.session_id);
    // Another credential of the same account is the same caller: it gets A's answer.
    expectReplay(fromA, await post(path, { amount_usd: 10 }, key, a2));
    expectReplay(fromB, await post(path, { amount_usd: 10 }, key, b1));
    expect(await count(t.store, "checkout_sessions")).toBe(2);
    // A credential without the first one's scopes gets no replay.
    const weaker = await post(path, { amount_usd: 10 }, key, aRead);
    expect(weaker.status).toBe(403);
    expect(weaker.body.error.code).toBe("forbidden");
    // The operator's records are its own too.
    const opKey = newKey();
    const opFirst = await post(`/v1/accounts/${a}/grants`, { kind: "promotional", amount: "1" }, opKey);
    expect(opFirst.status).toBe(201);
    const custSame = await post(path, { amount_usd: 10 }, opKey, a1);
    expect(custSame.status).toBe(200);
    expect(custSame.headers.get("idempotent-replayed")).toBeNull();
    expect(await count(t.store, "checkout_sessions")).toBe(3);
  });

  it("20 concurrent requests with one key: exactly one runs, all get its answer", async () => {
    const acct = await account();
    const key = newKey();
    const body = { kind: "purchase", amount: "7" };
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => post(`/v1/accounts/${acct}/grants`, body, key)),
    );
    expect(answers.every((r) => r.status === 201)).toBe(true);
    expect(new Set(answers.map((r) => r.text)).size).toBe(1);
    expect(answers.filter((r) => r.headers.get("idempotent-replayed") === null)).toHaveLength(1);
    expect(answers.filter((r) => r.headers.get("idempotent-replayed") === "true")).toHaveLength(19);
    expect(await count(t.store, "grants", `account_id = '${acct}'`)).toBe(1);
    expect(await balance(acct)).toMatchObject({ total: "7", available: "7" });

    // The same for debits with client-less ids (holds) and account creation.
    const accounts = await count(t.store, "accounts");
    const aKey = newKey();
    const created = await Promise.all(Array.from({ length: 20 }, () => post("/v1/accounts", {}, aKey)));
    expect(new Set(created.map((r) => r.text)).size).toBe(1);
    expect(await count(t.store, "accounts")).toBe(accounts + 1);
    const hKey = newKey();
    const holds = await Promise.all(
      Array.from({ length: 20 }, () => post("/v1/holds", { account_id: acct, amount: "1" }, hKey)),
    );
    expect(new Set(holds.map((r) => r.text)).size).toBe(1);
    expect(await balance(acct)).toMatchObject({ held: "1", available: "6" });
  });

  it("a 4xx answer is kept: the retry gets the same refusal; a request refused before it runs is not", async () => {
    const acct = await account();
    const key = newKey();
    const event = { id: `evt-${randomUUID()}`, account_id: acct, service: "video_download", quantity: 1 };
    const refused = await post("/v1/usage", event, key);
    expect(refused.status).toBe(402);
    expect(refused.body.error.code).toBe("insufficient_credits");
    await t.op("POST", `/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "100" });
    expectReplay(refused, await post("/v1/usage", event, key));
    expect(await count(t.store, "usages", `account_id = '${acct}'`)).toBe(0);
    // A new key runs the request again.
    expect((await post("/v1/usage", event, newKey())).status).toBe(201);

    const notFound = newKey();
    const missing = await post(
      "/v1/accounts/acct_missing/grants",
      { kind: "purchase", amount: "1" },
      notFound,
    );
    expect(missing.status).toBe(404);
    expectReplay(
      missing,
      await post("/v1/accounts/acct_missing/grants", { kind: "purchase", amount: "1" }, notFound),
    );

    // A malformed request (400, found by the schema or by the handler) is not kept: the key stays free.
    for (const bad of [
      { kind: "nope", amount: "1" },
      { kind: "purchase", amount: "-1" },
    ]) {
      const k2 = newKey();
      const invalid = await post(`/v1/accounts/${acct}/grants`, bad, k2);
      expect(invalid.status).toBe(400);
      expect(invalid.body.error.code).toBe("validation_error");
      const valid = await post(`/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "1" }, k2);
      expect(valid.status).toBe(201);
      expect(valid.headers.get("idempotent-replayed")).toBeNull();
    }
    // Refused for the credential: not kept either.
    const k3 = newKey();
    const noAuth = await post(`/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "1" }, k3, "nope");
    expect(noAuth.status).toBe(401);
    expect((await post(`/v1/accounts/${acct}/grants`, { kind: "purchase", amount: "1" }, k3)).status).toBe(
      201,
    );
  });

  it("a malformed key is 400 validation_error on field Idempotency-Key; other methods ignore it", async () => {
    const acct = await account();
    const before = await count(t.store, "accounts");
    for (const bad of ["", "x".repeat(256), "a\tb", "caf\u00e9"]) {
      const r = await send("POST", "/v1/accounts", {}, { "idempotency-key": bad });
      expect(r.status, JSON.stringify(bad)).toBe(400);
      expect(r.body.error).toMatchObject({ code: "validation_error", field: "Idempotency-Key" });
    }
    expect(await count(t.store, "accounts")).toBe(before);
    const longest = "k".repeat(255) + randomUUID();
    expect((await post("/v1/accounts", {}, longest.slice(-255))).status).toBe(201);
    expect((await post("/v1/accounts", {}, "a key with spaces & symbols !~" + randomUUID())).status).toBe(
      201,
    );
    const get = await send("GET", `/v1/accounts/${acct}`, undefined, { "idempotency-key": "" });
    expect(get.status).toBe(200);
  });

  it("secrets are never stored in clear: key creation is sealed, token issue is not stored", async () => {
    const acct = await account();
    const key = newKey();
    const created = await post(
      `/v1/accounts/${acct}/keys`,
      { name: "ci", scopes: ["read", "usage", "manage"] },
      key,
    );
    expect(created.status).toBe(201);
    const secret = created.body.secret as string;
    expect(secret).toMatch(/^tly_live_/);
    // The retry gets the secret again, byte for byte; no second key exists.
    expectReplay(
      created,
      await post(`/v1/accounts/${acct}/keys`, { name: "ci", scopes: ["read", "usage", "manage"] }, key),
    );
    expect(await count(t.store, "api_keys", `account_id = '${acct}'`)).toBe(1);

    // The customer's own key creation: the same, and another credential cannot open the answer.
    const other = (await t.op("POST", `/v1/accounts/${acct}/keys`, { scopes: ["read", "usage", "manage"] }))
      .body.secret as string;
    const cKey = newKey();
    const mine = await post("/api/v1/keys", { name: "mine" }, cKey, secret);
    expect(mine.status).toBe(201);
    const mySecret = mine.body.secret as string;
    expectReplay(mine, await post("/api/v1/keys", { name: "mine" }, cKey, secret));
    const elsewhere = await post("/api/v1/keys", { name: "mine" }, cKey, other);
    expect(elsewhere.status).toBe(409);
    expect(elsewhere.body.error).toMatchObject({ code: "idempotency_conflict", field: "Idempotency-Key" });
    expect(elsewhere.text).not.toContain(mySecret);
    expect(await count(t.store, "api_keys", `account_id = '${acct}'`)).toBe(3);

    // Token issue: the header is ignored, nothing is kept.
    await t.op("POST", `/v1/accounts/${acct}/users`, {
      email: `u-${randomUUID()}@example.com`,
      password: "a-long-password",
    });
    const users = (await t.op("GET", `/v1/accounts/${acct}/users`)).body.data as { email: string }[];
    const tKey = newKey();
    const creds = { email: users[0]!.email, password: "a-long-password" };
    const tok = await post("/api/v1/auth/token", creds, tKey, "");
    expect(tok.status).toBe(200);
    const tok2 = await post("/api/v1/auth/token", creds, tKey, "");
    expect(tok2.status).toBe(200);
    expect(tok2.headers.get("idempotent-replayed")).toBeNull();

    const table = await rawRecords(t.store);
    for (const s of [secret, mySecret, tok.body.access_token as string]) {
      expect(table).not.toContain(s);
      expect(table).not.toContain(s.slice(-24));
    }
    expect(table).toContain(key);
    expect(await count(t.store, "idempotency_keys", "route = '/api/v1/auth/token'")).toBe(0);
    const sealed = await query(
      t.store,
      `SELECT body_encoding FROM idempotency_keys WHERE idem_key = '${key}'`,
    );
    expect(sealed.map((r) => r.body_encoding)).toEqual(["sealed"]);
  });

  it("answers are kept 24 hours, then the key is free again; the sweep deletes expired records", async () => {
    const key = newKey();
    const first = await post("/v1/accounts", {}, key);
    expect(first.status).toBe(201);
    t.clock.advance(DEFAULT_TTL_MS - 60_000);
    expectReplay(first, await post("/v1/accounts", {}, key));
    t.clock.advance(60_000);
    const later = await post("/v1/accounts", {}, key);
    expect(later.status).toBe(201);
    expect(later.headers.get("idempotent-replayed")).toBeNull();
    expect(later.body.id).not.toBe(first.body.id);
    expectReplay(later, await post("/v1/accounts", {}, key));

    const total = await count(t.store, "idempotency_keys");
    expect(total).toBeGreaterThan(1);
    const swept = await idempotencyStoreFor(t.store).sweep(t.clock.now());
    // Everything from before the jump is gone; the record just made is kept.
    expect(swept).toBe(total - 1);
    expect(await count(t.store, "idempotency_keys")).toBe(1);
    expectReplay(later, await post("/v1/accounts", {}, key));
  });

  it.runIf(kind === "postgres")(
    "a claim's asynchronous commit stays its own: the connection's later commits wait for their flush, and the claim locks at once",
    async () => {
      const shared = (t.store as PostgresStore).pool;
      // One connection, so the claim and the checks below run on the same session.
      const pool = new pg.Pool({ ...shared.options, max: 1 });
      try {
        const store = new PostgresIdempotencyStore(pool);
        const id = { caller: "operator", method: "POST", route: "/v1/accounts", key: newKey() };
        const now = t.clock.now();
        const claim = {
          ...id,
          request_hash: "h",
          owner: "o1",
          scopes: "",
          now,
          locked_until: now + 60_000,
          expires_at: now + DEFAULT_TTL_MS,
        };
        expect(await store.claim(claim)).toEqual({ claimed: true });
        // The setting was local to the claim's own transaction: later commits (ledger batches share
        // this pool) wait for their flush again.
        const { rows } = await pool.query("SHOW synchronous_commit");
        expect(rows[0].synchronous_commit).toBe("on");
        // And the claim is visible at once to everyone, as a lock must be.
        expect((await store.claim({ ...claim, owner: "o2" })).claimed).toBe(false);
        expect((await idempotencyStoreFor(t.store).get(id))?.owner).toBe("o1");
      } finally {
        await pool.end();
      }
    },
  );

  describe("the plugin on its own app (5xx, waiting, leases)", () => {
    let app: FastifyInstance;
    let runs = 0;
    let gate: Promise<void> = Promise.resolve();
    let open: () => void = () => {};

    beforeAll(async () => {
      app = Fastify({ logger: false });
      app.setErrorHandler(errorHandler);
      await app.register(idempotency, {
        store: t.store,
        clock: t.clock,
        waitTimeoutMs: 300,
        leaseMs: 1000,
        sweepIntervalMs: 0,
        callerOf: () => `test:${kind}`,
      });
      app.post("/flaky", async (_req, reply) => {
        runs++;
        if (runs === 1) reply.code(503);
        return { runs };
      });
      app.post("/slow", async () => {
        runs++;
        await gate;
        return { runs };
      });
      app.post("/work", async () => ({ runs: ++runs }));
      await app.listen({ port: 0, host: "127.0.0.1" });
    });
    afterAll(async () => {
      await app?.close();
    });

    const inject = (url: string, key: string, payload: object = {}) =>
      app.inject({ method: "POST", url, payload, headers: { "idempotency-key": key } });

    it("a 5xx is not kept: the retry runs again, and its answer is kept", async () => {
      runs = 0;
      const key = newKey();
      const failed = await inject("/flaky", key);
      expect(failed.statusCode).toBe(503);
      const retried = await inject("/flaky", key);
      expect(retried.statusCode).toBe(200);
      expect(retried.json()).toEqual({ runs: 2 });
      expect(retried.headers["idempotent-replayed"]).toBeUndefined();
      const replayed = await inject("/flaky", key);
      expect(replayed.body).toBe(retried.body);
      expect(replayed.headers["idempotent-replayed"]).toBe("true");
      expect(runs).toBe(2);
    });

    it("a duplicate waits for the first answer; past its wait it gets 409 in progress", async () => {
      runs = 0;
      gate = new Promise((resolve) => (open = resolve));
      const key = newKey();
      const first = inject("/slow", key);
      await new Promise((r) => setTimeout(r, 20));
      const waited = await inject("/slow", key);
      expect(waited.statusCode).toBe(409);
      expect(waited.json().error).toMatchObject({
        code: "idempotency_conflict",
        field: "Idempotency-Key",
        in_progress: true,
      });
      expect(waited.headers["retry-after"]).toBe("1");
      const second = inject("/slow", key);
      open();
      const [a, b] = await Promise.all([first, second]);
      expect(a.statusCode).toBe(200);
      expect(b.body).toBe(a.body);
      expect(b.headers["idempotent-replayed"]).toBe("true");
      expect(runs).toBe(1);
    });

    it("a client that gave up before the answer gets it on its retry; nothing runs twice", async () => {
      runs = 0;
      gate = new Promise((resolve) => (open = resolve));
      const key = newKey();
      const addr = app.server.address();
      const url = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}/slow`;
      const init = {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": key },
        body: "{}",
      };
      const gaveUp = new AbortController();
      const first = fetch(url, { ...init, signal: gaveUp.signal }).catch((err: unknown) => err);
      await new Promise((r) => setTimeout(r, 30));
      gaveUp.abort();
      expect(await first).toBeInstanceOf(Error);
      setTimeout(open, 30);
      const retry = await fetch(url, init);
      expect(retry.status).toBe(200);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      expect(await retry.json()).toEqual({ runs: 1 });
      expect(runs).toBe(1);
    });

    it("a first request that died is taken over after its lease, by the same request only", async () => {
      runs = 0;
      const key = newKey();
      const now = t.clock.now();
      const stale = {
        caller: `test:${kind}`,
        method: "POST",
        route: "/work",
        key,
        owner: "a-node-that-died",
        scopes: null,
        now,
        locked_until: now + 1000,
        expires_at: now + DEFAULT_TTL_MS,
      };
      const store = idempotencyStoreFor(t.store);
      expect(await store.claim({ ...stale, request_hash: requestHash("POST", "/work", { a: 1 }) })).toEqual({
        claimed: true,
      });
      const busy = await inject("/work", key, { a: 1 });
      expect(busy.statusCode).toBe(409);
      expect(busy.json().error.in_progress).toBe(true);
      t.clock.advance(1000);
      const other = await inject("/work", key, { a: 2 });
      expect(other.statusCode).toBe(409);
      expect(other.json().error.in_progress).toBeUndefined();
      const taken = await inject("/work", key, { a: 1 });
      expect(taken.statusCode).toBe(200);
      expect(taken.json()).toEqual({ runs: 1 });
      expect((await inject("/work", key, { a: 1 })).headers["idempotent-replayed"]).toBe("true");
      expect(runs).toBe(1);
    });
  });
});
