import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/domain/clock.ts";
import { Engine } from "../../src/ledger/engine.ts";
import { buildApp } from "../../src/http/app.ts";
import { OperatorAuth } from "../../src/http/auth.ts";
import { CustomerAuth } from "../../src/http/customer-auth.ts";
import {
  DEFAULT_OPERATOR_POLICY,
  parsePolicy,
  policyHeader,
  type RateLimitBackend,
  type RateLimitSettings,
} from "../../src/http/rate-limit.ts";
import type { PostgresStore } from "../../src/store/postgres/store.ts";
import type { Store } from "../../src/store/types.ts";
import { freshDatabase, type StoreKind, type TestDatabase } from "../support/stores.ts";
import { OPERATOR_KEY } from "./harness.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** Small limits, so budgets run out in a few requests. */
const LIMITS: RateLimitSettings = {
  tiers: {
    free: "3/min",
    standard: "5/min, 50/h",
    business: "20/min",
    // Refused requests must not spend the longer window: 2 per second, 4 per hour.
    bursty: "2/s, 4/h",
  },
  operatorPolicy: "1000/min",
  anonymousPolicy: "4/min",
};

interface Answer {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Headers;
}

interface Node {
  app: FastifyInstance;
  base: string;
  /** A request with `Authorization: Bearer <credential>` (none when undefined). */
  send(credential: string | undefined, method: string, path: string, body?: unknown): Promise<Answer>;
}

interface Db {
  db: TestDatabase;
  store: Store;
  engine: Engine;
  clock: ManualClock;
  customerAuth: CustomerAuth;
  operator: OperatorAuth;
}

async function openDb(db: TestDatabase): Promise<Db> {
  const store = await db.open();
  const clock = new ManualClock(Date.now());
  const engine = new Engine(store, { clock });
  const { auth: operator } = await OperatorAuth.setup(store, OPERATOR_KEY);
  const customerAuth = await CustomerAuth.setup(store, { clock });
  return { db, store, engine, clock, customerAuth, operator };
}

async function startNode(d: Db, rateLimit: RateLimitSettings): Promise<Node> {
  const app = await buildApp({
    engine: d.engine,
    operator: d.operator,
    customerAuth: d.customerAuth,
    logLevel: "silent",
    rateLimit,
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const addr = app.server.address();
  const base = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  return {
    app,
    base,
    send: async (credential, method, path, body) => {
      const res = await fetch(base + path, {
        method,
        headers: {
          ...(credential !== undefined ? { authorization: `Bearer ${credential}` } : {}),
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
  };
}

function rl(a: Answer) {
  const n = (name: string) => {
    const v = a.headers.get(name);
    return v === null ? null : Number(v);
  };
  return {
    limit: n("ratelimit-limit"),
    remaining: n("ratelimit-remaining"),
    reset: n("ratelimit-reset"),
    policy: a.headers.get("ratelimit-policy"),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RateLimitedCtx {
  d: Db;
  nodes: Node[];
  extra: Db[];
  clients: Redis[];
  /** Counter prefixes used in Redis, removed at the end. */
  prefixes: string[];
  node(overrides?: RateLimitSettings, d?: Db): Promise<Node>;
  sameDatabase(): Promise<Db>;
}

/**
 * One database, apps built on it with the given backend. Each app gets its own counter prefix (so tests do
 * not share budgets through a shared backend) unless a test asks for the same one.
 */
function useRateLimited(kind: StoreKind, backend: RateLimitBackend): RateLimitedCtx {
  const ctx: RateLimitedCtx = {
    d: {} as Db,
    nodes: [],
    extra: [],
    clients: [],
    prefixes: [],
    /** A new app on the shared database. */
    async node(overrides: RateLimitSettings = {}, d: Db = ctx.d): Promise<Node> {
      const settings: RateLimitSettings = {
        ...LIMITS,
        backend,
        keyPrefix: `tally_rl_test_${randomBytes(6).toString("hex")}`,
        ...(backend === "redis" ? { redisUrl: REDIS_URL } : {}),
        ...overrides,
      };
      if (settings.backend === "redis") ctx.prefixes.push(settings.keyPrefix!);
      const node = await startNode(d, settings);
      ctx.nodes.push(node);
      return node;
    },
    /** A second store and engine on the same database: another node of the deployment. */
    async sameDatabase(): Promise<Db> {
      const d = await openDb(ctx.d.db);
      ctx.extra.push(d);
      return d;
    },
  };
  beforeAll(async () => {
    ctx.d = await openDb(await freshDatabase(kind));
  });
  afterAll(async () => {
    for (const n of ctx.nodes) await n.app.close();
    for (const c of ctx.clients) c.disconnect();
    if (ctx.prefixes.length > 0) {
      const redis = new Redis(REDIS_URL);
      for (const prefix of ctx.prefixes) {
        const keys = await redis.keys(`${prefix}:*`);
        if (keys.length > 0) await redis.del(...keys);
      }
      await redis.quit();
    }
    for (const d of ctx.extra) await d.engine.close();
    await ctx.d.engine?.close();
    await ctx.d.db?.destroy();
  });
  return ctx;
}

/** An account (with metadata) and an API key of it, made through the operator API. */
async function account(node: Node, metadata: Record<string, string> = {}) {
  const acct = await node.send(OPERATOR_KEY, "POST", "/v1/accounts", { metadata });
  expect(acct.status).toBe(201);
  return acct.body.id as string;
}
async function apiKey(node: Node, accountId: string) {
  const key = await node.send(OPERATOR_KEY, "POST", `/v1/accounts/${accountId}/keys`, {});
  expect(key.status).toBe(201);
  return key.body.secret as string;
}

const SUITES: { kind: StoreKind; backend: RateLimitBackend }[] = [
  { kind: "sqlite", backend: "memory" },
  { kind: "postgres", backend: "memory" },
  { kind: "postgres", backend: "postgres" },
  { kind: "sqlite", backend: "redis" },
];

for (const { kind, backend } of SUITES)
  describe(`rate limits [${kind}, ${backend}]`, () => {
    const t = useRateLimited(kind, backend);
    const shared = backend !== "memory";

    it("every counted response carries RateLimit headers; Remaining decreases; the 6th is a 429", async () => {
      const n = await t.node();
      const key = await apiKey(n, await account(n));
      const seen = [];
      for (let i = 0; i < 5; i++) {
        const r = await n.send(key, "GET", "/api/v1/keys");
        expect(r.status).toBe(200);
        seen.push(rl(r));
      }
      expect(seen.map((h) => h.remaining)).toEqual([4, 3, 2, 1, 0]);
      for (const h of seen) {
        expect(h.limit).toBe(5);
        expect(h.policy).toBe("5;w=60, 50;w=3600");
        expect(h.reset).toBeGreaterThan(0);
        expect(h.reset).toBeLessThanOrEqual(60);
      }
      const refused = await n.send(key, "GET", "/api/v1/keys");
      expect(refused.status).toBe(429);
      const retryAfter = Number(refused.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(refused.body).toEqual({
        error: {
          code: "rate_limited",
          message: expect.stringMatching(/^rate limit exceeded: 5 requests per 60 s; retry in \d+ s$/),
          request_id: refused.headers.get("x-request-id"),
          retry_after_s: retryAfter,
          limit: 5,
          window_s: 60,
        },
      });
      expect(refused.body.error.request_id).toMatch(/^req_/);
      expect(rl(refused)).toMatchObject({ limit: 5, remaining: 0, policy: "5;w=60, 50;w=3600" });
      // Refused on every customer route alike, POSTs too, whatever the body.
      expect((await n.send(key, "GET", "/api/v1/credits")).status).toBe(429);
      expect((await n.send(key, "POST", "/api/v1/keys", { bogus: 1 })).status).toBe(429);
      // The operator is not affected: its own budget.
      const op = await n.send(OPERATOR_KEY, "GET", "/v1/accounts");
      expect(op.status).toBe(200);
      expect(rl(op)).toMatchObject({ limit: 1000, policy: "1000;w=60" });
    });

    it("separate keys, token subjects and accounts have separate budgets", async () => {
      const n = await t.node();
      const a = await account(n);
      const [k1, k2] = [await apiKey(n, a), await apiKey(n, a)];
      const other = await apiKey(n, await account(n));
      for (let i = 0; i < 5; i++) expect((await n.send(k1, "GET", "/api/v1/keys")).status).toBe(200);
      expect((await n.send(k1, "GET", "/api/v1/keys")).status).toBe(429);
      for (const k of [k2, other]) {
        const r = await n.send(k, "GET", "/api/v1/keys");
        expect(r.status).toBe(200);
        expect(rl(r).remaining).toBe(4);
      }
      // A token's budget is its subject's: two tokens of one user share it; another user has their own.
      const sign = async (user_id: string) =>
        (await t.d.customerAuth.signToken({ account_id: a, user_id, scopes: ["read"] })).access_token;
      const ada1 = await sign("usr_ada");
      expect(rl(await n.send(ada1, "GET", "/api/v1/keys")).remaining).toBe(4);
      t.d.clock.advance(1000); // a later iat: another token of the same subject
      const ada2 = await sign("usr_ada");
      expect(ada2).not.toBe(ada1);
      expect(rl(await n.send(ada2, "GET", "/api/v1/keys")).remaining).toBe(3);
      expect(rl(await n.send(await sign("usr_bob"), "GET", "/api/v1/keys")).remaining).toBe(4);
      expect((await n.send(k1, "GET", "/api/v1/keys")).status).toBe(429);
    });

    it("the account's tier sets the limit: free is lower, business higher, unknown → standard", async () => {
      const n = await t.node();
      const free = await apiKey(n, await account(n, { rate_limit_tier: "free" }));
      for (let i = 0; i < 3; i++) {
        const r = await n.send(free, "GET", "/api/v1/keys");
        expect(r.status).toBe(200);
        expect(rl(r)).toMatchObject({ limit: 3, remaining: 2 - i, policy: "3;w=60" });
      }
      const refused = await n.send(free, "GET", "/api/v1/keys");
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ code: "rate_limited", limit: 3 });
      const business = await apiKey(n, await account(n, { rate_limit_tier: "business" }));
      expect(rl(await n.send(business, "GET", "/api/v1/keys"))).toMatchObject({ limit: 20, remaining: 19 });
      for (const tier of ["platinum", "__proto__", ""]) {
        const k = await apiKey(n, await account(n, { rate_limit_tier: tier }));
        expect(rl(await n.send(k, "GET", "/api/v1/keys"))).toMatchObject({ limit: 5, remaining: 4 });
      }
      const none = await apiKey(n, await account(n));
      expect(rl(await n.send(none, "GET", "/api/v1/keys"))).toMatchObject({ limit: 5, remaining: 4 });
      // The tier of the account's plan (issue #4), when the account names none itself.
      const op = (path: string, body: unknown) => n.send(OPERATOR_KEY, "POST", path, body);
      await op("/v1/plans", {
        id: "biz-tier",
        name: "Biz",
        monthly_allowance: 1,
        rate_limit_tier: "business",
      });
      const subscribed = await account(n);
      expect((await op("/v1/subscriptions", { account_id: subscribed, plan_id: "biz-tier" })).status).toBe(
        201,
      );
      const onPlan = await apiKey(n, subscribed);
      expect(rl(await n.send(onPlan, "GET", "/api/v1/keys"))).toMatchObject({ limit: 20, remaining: 19 });
    });

    it("without a valid credential: counted per IP; wrong credentials gain no budget; 401s carry headers", async () => {
      const n = await t.node();
      const noCredential = await n.send(undefined, "GET", "/api/v1/keys");
      expect(noCredential.status).toBe(401);
      expect(rl(noCredential)).toMatchObject({ limit: 4, remaining: 3, policy: "4;w=60" });
      const wrongKey = await n.send("tly_live_" + "x".repeat(32), "GET", "/api/v1/keys");
      expect(wrongKey.status).toBe(401);
      expect(rl(wrongKey).remaining).toBe(2);
      // A wrong operator key, a customer key on /v1, an unknown route: all the same IP budget.
      const wrongOperator = await n.send("not-the-operator-key-at-all", "GET", "/v1/accounts");
      expect(wrongOperator.status).toBe(401);
      expect(rl(wrongOperator).remaining).toBe(1);
      const unknown = await n.send(undefined, "GET", "/nowhere");
      expect(unknown.status).toBe(404);
      expect(rl(unknown).remaining).toBe(0);
      const refused = await n.send("tly_live_" + "y".repeat(32), "POST", "/api/v1/auth/token", {
        email: "a@example.com",
        password: "whatever password",
      });
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe("rate_limited");
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      // A valid credential is not held back by its IP.
      const key = await apiKey(n, await account(n));
      expect((await n.send(key, "GET", "/api/v1/keys")).status).toBe(200);
      expect((await n.send(OPERATOR_KEY, "GET", "/v1/accounts")).status).toBe(200);
    });

    it("health, metrics, the OpenAPI document and the docs are never limited", async () => {
      const n = await t.node({ anonymousPolicy: "1/min" });
      expect((await n.send(undefined, "GET", "/api/v1/keys")).status).toBe(401);
      expect((await n.send(undefined, "GET", "/api/v1/keys")).status).toBe(429);
      for (let i = 0; i < 3; i++)
        for (const path of [
          "/healthz",
          "/readyz",
          "/metrics",
          "/openapi.json",
          "/docs",
          "/docs/",
          "/healthz?x=1",
        ]) {
          const r = await n.send(undefined, "GET", path);
          expect(r.status, path).toBeLessThan(400);
          expect(r.headers.get("ratelimit-limit"), path).toBeNull();
        }
      expect((await n.send(undefined, "GET", "/api/v1/keys")).status).toBe(429);
    });

    it("a refused request spends nothing in the policy's other windows", async () => {
      const n = await t.node();
      const key = await apiKey(n, await account(n, { rate_limit_tier: "bursty" }));
      const answers = [];
      for (let i = 0; i < 5; i++) answers.push(await n.send(key, "GET", "/api/v1/keys"));
      expect(answers.map((a) => a.status)).toEqual([200, 200, 429, 429, 429]);
      expect(rl(answers[0]!)).toMatchObject({ limit: 2, remaining: 1, policy: "2;w=1, 4;w=3600" });
      expect(rl(answers[2]!)).toMatchObject({ limit: 2, remaining: 0 });
      expect(answers[2]!.headers.get("retry-after")).toBe("1");
      await sleep(1100);
      // 2 served this hour, not 5: the hour window (2 left, equal to the second's, and later to reset) shows.
      const next = await n.send(key, "GET", "/api/v1/keys");
      expect(next.status).toBe(200);
      expect(rl(next)).toMatchObject({ limit: 4, remaining: 1 });
      expect(rl(next).reset).toBeGreaterThan(3500);
      const last = await n.send(key, "GET", "/api/v1/keys");
      expect(rl(last)).toMatchObject({ limit: 4, remaining: 0 });
      await sleep(1100);
      const hourSpent = await n.send(key, "GET", "/api/v1/keys");
      expect(hourSpent.status).toBe(429);
      expect(hourSpent.body.error).toMatchObject({ limit: 4, window_s: 3600 });
      expect(Number(hourSpent.headers.get("retry-after"))).toBeGreaterThan(3500);
    });

    it(
      shared
        ? "two app instances on one database share one budget through the backend"
        : "in memory, each app instance counts alone (one node)",
      async () => {
        const keyPrefix = `tally_rl_test_${randomBytes(6).toString("hex")}`;
        const a = await t.node({ keyPrefix });
        const b = await t.node({ keyPrefix }, await t.sameDatabase());
        const key = await apiKey(a, await account(a));
        const onA = [];
        for (let i = 0; i < 3; i++) onA.push(rl(await a.send(key, "GET", "/api/v1/keys")).remaining);
        expect(onA).toEqual([4, 3, 2]);
        const onB = await b.send(key, "GET", "/api/v1/keys");
        expect(onB.status).toBe(200);
        expect(rl(onB).remaining).toBe(shared ? 1 : 4);
        if (!shared) return;
        expect((await b.send(key, "GET", "/api/v1/keys")).status).toBe(200);
        expect((await a.send(key, "GET", "/api/v1/keys")).status).toBe(429);
        expect((await b.send(key, "GET", "/api/v1/keys")).status).toBe(429);
        // The operator's budget is shared as well.
        const opA = rl(await a.send(OPERATOR_KEY, "GET", "/v1/accounts")).remaining!;
        expect(rl(await b.send(OPERATOR_KEY, "GET", "/v1/accounts")).remaining).toBe(opA - 1);
        if (backend === "postgres") {
          // Counters need no durability: the table is UNLOGGED (no WAL flush per counted request).
          const { rows } = await (t.d.store as PostgresStore).pool.query(
            "SELECT relpersistence FROM pg_class WHERE relname = 'tally_rate_limits'",
          );
          expect(rows).toEqual([{ relpersistence: "u" }]);
        }
      },
    );
  });

describe("rate limit settings", () => {
  const t = useRateLimited("sqlite", "memory");

  it("the defaults: memory backend, generous limits; the operator key has its circuit breaker", async () => {
    const n = await startNode(t.d, {});
    t.nodes.push(n);
    const op = await n.send(OPERATOR_KEY, "GET", "/v1/accounts");
    const windows = parsePolicy(DEFAULT_OPERATOR_POLICY);
    expect(rl(op)).toMatchObject({ limit: windows[0]!.points, policy: policyHeader(windows) });
    const key = await apiKey(n, await account(n));
    expect(rl(await n.send(key, "GET", "/api/v1/keys"))).toMatchObject({
      limit: 50,
      remaining: 49,
      policy: "50;w=1, 3000;w=60",
    });
    expect(rl(await n.send(undefined, "GET", "/api/v1/keys")).policy).toBe("1000;w=1, 20000;w=60");
  });

  it("off: no headers, no limits", async () => {
    const n = await t.node({ backend: "off", anonymousPolicy: "1/min" });
    for (let i = 0; i < 3; i++) {
      const r = await n.send(undefined, "GET", "/api/v1/keys");
      expect(r.status).toBe(401);
      expect(r.headers.get("ratelimit-limit")).toBeNull();
    }
  });

  it("the environment: TALLY_RATE_LIMIT, TALLY_RATE_LIMIT_TIERS (tiers, operator, anonymous)", async () => {
    const saved = { ...process.env };
    try {
      process.env.TALLY_RATE_LIMIT = "off";
      const off = await startNode(t.d, {});
      t.nodes.push(off);
      expect((await off.send(undefined, "GET", "/healthz")).status).toBe(200);
      expect((await off.send(undefined, "GET", "/v1/accounts")).headers.get("ratelimit-limit")).toBeNull();
      process.env.TALLY_RATE_LIMIT = "Memory";
      process.env.TALLY_RATE_LIMIT_TIERS = JSON.stringify({
        standard: "7/min",
        gold: "9/10s",
        operator: "11/h",
        anonymous: "2/min",
      });
      const n = await startNode(t.d, {});
      t.nodes.push(n);
      expect(rl(await n.send(OPERATOR_KEY, "GET", "/v1/accounts"))).toMatchObject({
        limit: 11,
        policy: "11;w=3600",
      });
      expect(rl(await n.send(undefined, "GET", "/v1/accounts"))).toMatchObject({ limit: 2 });
      const std = await apiKey(n, await account(n));
      expect(rl(await n.send(std, "GET", "/api/v1/keys"))).toMatchObject({ limit: 7 });
      const gold = await apiKey(n, await account(n, { rate_limit_tier: "gold" }));
      expect(rl(await n.send(gold, "GET", "/api/v1/keys"))).toMatchObject({ limit: 9, policy: "9;w=10" });
      const free = await apiKey(n, await account(n, { rate_limit_tier: "free" }));
      expect(rl(await n.send(free, "GET", "/api/v1/keys"))).toMatchObject({
        limit: 10,
        policy: "10;w=1, 300;w=60",
      });
      // Options win over the environment.
      const opt = await startNode(t.d, { tiers: { standard: "8/min" } });
      t.nodes.push(opt);
      expect(rl(await opt.send(std, "GET", "/api/v1/keys"))).toMatchObject({ limit: 8 });

      process.env.TALLY_RATE_LIMIT = "memcached";
      await expect(startNode(t.d, {})).rejects.toThrow(
        /TALLY_RATE_LIMIT must be one of off, memory, postgres, redis/,
      );
      process.env.TALLY_RATE_LIMIT = "memory";
      process.env.TALLY_RATE_LIMIT_TIERS = "{not json";
      await expect(startNode(t.d, {})).rejects.toThrow(/TALLY_RATE_LIMIT_TIERS/);
      process.env.TALLY_RATE_LIMIT_TIERS = JSON.stringify({ free: "lots" });
      await expect(startNode(t.d, {})).rejects.toThrow(/rate limit tier:free: "lots"/);
    } finally {
      process.env = saved;
    }
  });

  it("bad settings fail at startup, loudly", async () => {
    await expect(startNode(t.d, { backend: "postgres" })).rejects.toThrow(/needs a PostgreSQL store/);
    await expect(startNode(t.d, { defaultTier: "gold" })).rejects.toThrow(/default tier "gold"/);
    await expect(startNode(t.d, { tiers: { free: [{ points: 0, duration: 60 }] } })).rejects.toThrow(
      /positive whole numbers/,
    );
    await expect(startNode(t.d, { anonymousPolicy: "" })).rejects.toThrow(/no window/);
    await expect(startNode(t.d, { backend: "redis", redisUrl: "redis://127.0.0.1:1" })).rejects.toThrow(
      /cannot connect to Redis at redis:\/\/127\.0\.0\.1:1/,
    );
  });

  it("policy text: units s, min, h, d and multiples", () => {
    expect(parsePolicy("50/s, 3000/min,100/h , 1000/d, 100/10s, 5/ 2 minute")).toEqual([
      { points: 50, duration: 1 },
      { points: 3000, duration: 60 },
      { points: 100, duration: 3600 },
      { points: 1000, duration: 86400 },
      { points: 100, duration: 10 },
      { points: 5, duration: 120 },
    ]);
    expect(policyHeader(parsePolicy("50/s, 3000/min"))).toBe("50;w=1, 3000;w=60");
    for (const bad of ["50", "50/week", "-1/s", "1.5/s", "0/s", "/s"])
      expect(() => parsePolicy(bad)).toThrow();
  });

  it("redis failing at run time: the in-memory insurance limiter keeps counting; requests still served", async () => {
    const client = new Redis(REDIS_URL, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      lazyConnect: true,
    });
    client.on("error", () => undefined);
    await client.connect();
    t.clients.push(client);
    const n = await t.node({ backend: "redis", redis: client });
    const key = await apiKey(n, await account(n));
    expect(rl(await n.send(key, "GET", "/api/v1/keys")).remaining).toBe(4);
    client.disconnect();
    const during = [];
    for (let i = 0; i < 5; i++) during.push(await n.send(key, "GET", "/api/v1/keys"));
    expect(during.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(rl(during[0]!)).toMatchObject({ limit: 5, remaining: 4 });
    expect((await n.send(key, "GET", "/api/v1/keys")).status).toBe(429);
    // The app closes without touching a client it does not own.
    expect(client.status).toBe("end");
  });
});
