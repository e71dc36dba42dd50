import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/domain/clock.ts";
import { Engine } from "../../src/ledger/engine.ts";
import { buildApp } from "../../src/http/app.ts";
import { OperatorAuth, sha256 } from "../../src/http/auth.ts";
import { CustomerAuth, hashPassword, verifyPassword } from "../../src/http/customer-auth.ts";
import { customerKeyRoutes } from "../../src/http/routes/customer-keys.ts";
import { operatorKeyRoutes } from "../../src/http/routes/keys.ts";
import { authStoreFor } from "../../src/store/auth-store.ts";
import type { PostgresStore } from "../../src/store/postgres/store.ts";
import type { SqliteStore } from "../../src/store/sqlite/store.ts";
import type { Store } from "../../src/store/types.ts";
import { describeEachStore, freshDatabase, type StoreKind, type TestDatabase } from "../support/stores.ts";
import { OPERATOR_KEY } from "./harness.ts";
import {
  assertCustomerRouteSecurity,
  send,
  type Answer,
  type SecurityCredentials,
} from "./security-suite.ts";

interface Ctx {
  base: string;
  app: FastifyInstance;
  engine: Engine;
  store: Store;
  db: TestDatabase;
  clock: ManualClock;
  auth: CustomerAuth;
  /** With the operator key. */
  op(method: string, path: string, body?: unknown): Promise<Answer>;
  /** With a customer credential (or none). */
  as(credential: string | undefined, method: string, path: string, body?: unknown): Promise<Answer>;
}

/**
 * The real app from buildApp, plus this work's plugins registered as the lead will wire them: the operator
 * plugin in a /v1 scope behind the operator key, the customer plugin under /api/v1. Once app.ts registers
 * them itself, the routes exist already and are not registered twice.
 */
function useAuthServer(kind: StoreKind): Ctx {
  const ctx = {} as Ctx;
  beforeAll(async () => {
    ctx.db = await freshDatabase(kind);
    ctx.store = await ctx.db.open();
    ctx.clock = new ManualClock(Date.parse("2025-01-01T00:00:00Z"));
    ctx.engine = new Engine(ctx.store, { clock: ctx.clock });
    const { auth: operator } = await OperatorAuth.setup(ctx.store, OPERATOR_KEY);
    ctx.auth = await CustomerAuth.setup(ctx.store, { clock: ctx.clock });
    ctx.app = await buildApp({ engine: ctx.engine, operator, logLevel: "silent" });
    const deps = { engine: ctx.engine, customerAuth: ctx.auth };
    if (!ctx.app.hasRoute({ method: "POST", url: "/v1/accounts/:id/keys" }))
      await ctx.app.register(
        async (v1) => {
          v1.addHook("onRequest", async (req) => operator.check(req));
          await v1.register(operatorKeyRoutes, deps);
        },
        { prefix: "/v1" },
      );
    if (!ctx.app.hasRoute({ method: "GET", url: "/api/v1/keys" }))
      await ctx.app.register(customerKeyRoutes, { ...deps, prefix: "/api/v1" });
    await ctx.app.listen({ port: 0, host: "127.0.0.1" });
    const addr = ctx.app.server.address();
    ctx.base = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
    ctx.op = (method, path, body) => send(ctx.base, method, path, body, `Bearer ${OPERATOR_KEY}`);
    ctx.as = (credential, method, path, body) =>
      send(ctx.base, method, path, body, credential === undefined ? undefined : `Bearer ${credential}`);
  });
  afterAll(async () => {
    await ctx.app?.close();
    await ctx.engine?.close();
    await ctx.db?.destroy();
  });
  return ctx;
}

/** Every row of api_keys, as text, straight from the database. */
async function rawKeyRows(store: Store): Promise<string> {
  if (store.dialect === "sqlite")
    return JSON.stringify((store as SqliteStore).db.prepare("SELECT * FROM api_keys").all(), (_k, v) =>
      typeof v === "bigint" ? v.toString() : v,
    );
  return JSON.stringify((await (store as PostgresStore).pool.query("SELECT * FROM api_keys")).rows);
}

describeEachStore("customer credentials", (kind) => {
  const t = useAuthServer(kind);
  const account = async () => (await t.op("POST", "/v1/accounts", {})).body.id as string;
  const newKey = async (acct: string, body: unknown = {}) => {
    const r = await t.op("POST", `/v1/accounts/${acct}/keys`, body);
    expect(r.status, r.text).toBe(201);
    return r.body as { id: string; secret: string; prefix: string; scopes: string[] };
  };
  const newUser = async (acct: string, email: string, password = "correct horse battery") => {
    const r = await t.op("POST", `/v1/accounts/${acct}/users`, { email, password });
    expect(r.status, r.text).toBe(201);
    return r.body as { id: string; email: string };
  };
  const login = (email: string, password: string) =>
    t.as(undefined, "POST", "/api/v1/auth/token", { email, password });

  it("a key is created by the operator and shown once: prefixed, stored as a hash, listed without its secret", async () => {
    const acct = await account();
    const r = await t.op("POST", `/v1/accounts/${acct}/keys`, {
      name: "backend",
      scopes: ["read", "manage"],
    });
    expect(r.status).toBe(201);
    expect(r.headers.get("cache-control")).toBe("no-store");
    expect(r.body).toMatchObject({
      account_id: acct,
      name: "backend",
      scopes: ["read", "manage"],
      created_by: "operator",
      last_used_at: null,
      revoked_at: null,
    });
    const secret = r.body.secret as string;
    expect(secret).toMatch(/^tly_live_[A-Za-z0-9_-]{32}$/);
    expect(r.body.prefix).toBe(secret.slice(0, 17));
    expect(r.body.id).toMatch(/^key_[0-9a-z]{26}$/);

    const listed = await t.op("GET", `/v1/accounts/${acct}/keys`);
    expect(listed.status).toBe(200);
    const { secret: _shownOnce, ...withoutSecret } = r.body;
    expect(listed.body.data).toEqual([withoutSecret]);
    expect(listed.text).not.toContain(secret);
    expect(listed.text).not.toContain("secret");
    const defaults = await newKey(acct);
    expect(defaults.scopes).toEqual(["read", "usage"]);

    const raw = await rawKeyRows(t.store);
    expect(raw).not.toContain(secret);
    expect(raw).toContain(sha256(secret).toString("hex"));
    // Shown once: nothing in the API ever returns it again.
    expect((await t.as(secret, "GET", "/api/v1/keys")).text).not.toContain(secret);
  });

  it("a key works on customer routes; last_used_at is recorded at most once a minute", async () => {
    const acct = await account();
    const key = await newKey(acct);
    const t0 = t.clock.now();
    const r = await t.as(key.secret, "GET", "/api/v1/keys");
    expect(r.status).toBe(200);
    expect(r.body.data.map((k: { id: string }) => k.id)).toEqual([key.id]);
    expect(r.body.data[0].last_used_at).toBe(new Date(t0).toISOString());
    t.clock.advance(30_000);
    const again = await t.as(key.secret, "GET", "/api/v1/keys");
    expect(again.body.data[0].last_used_at).toBe(new Date(t0).toISOString());
    t.clock.advance(31_000);
    await t.as(key.secret, "GET", "/api/v1/keys");
    const shown = await t.op("GET", `/v1/accounts/${acct}/keys`);
    expect(shown.body.data[0].last_used_at).toBe(new Date(t0 + 61_000).toISOString());
  });

  it("no credential, a wrong key, a revoked key, the operator key → 401", async () => {
    const acct = await account();
    const key = await newKey(acct);
    expect((await t.as(undefined, "GET", "/api/v1/keys")).status).toBe(401);
    const wrong = await t.as("tly_live_" + "x".repeat(32), "GET", "/api/v1/keys");
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toMatchObject({ code: "unauthorized", message: "the API key is not valid" });
    expect((await t.as(OPERATOR_KEY, "GET", "/api/v1/keys")).status).toBe(401);
    expect((await t.as(key.secret, "GET", "/api/v1/keys")).status).toBe(200);
    const revoked = await t.op("POST", `/v1/keys/${key.id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked_at).toBe(new Date(t.clock.now()).toISOString());
    const refused = await t.as(key.secret, "GET", "/api/v1/keys");
    expect(refused.status).toBe(401);
    expect(refused.body.error).toMatchObject({
      code: "unauthorized",
      message: "the API key has been revoked",
    });
    t.clock.advance(1000);
    const twice = await t.op("POST", `/v1/keys/${key.id}/revoke`);
    expect(twice.body.revoked_at).toBe(revoked.body.revoked_at);
    // A customer key is not an operator key.
    expect((await t.as((await newKey(acct)).secret, "GET", `/v1/accounts/${acct}/keys`)).status).toBe(401);
  });

  it("scopes: a key without the scope → 403; no credential creates a key stronger than itself", async () => {
    const acct = await account();
    const reader = await newKey(acct, { scopes: ["read"] });
    const manager = await newKey(acct, { scopes: ["read", "manage"] });
    const r = await t.as(reader.secret, "POST", "/api/v1/keys", { name: "x" });
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "forbidden", required_scope: "manage" });
    expect((await t.as(reader.secret, "POST", `/api/v1/keys/${manager.id}/revoke`)).status).toBe(403);
    const usageOnly = await newKey(acct, { scopes: ["usage"] });
    expect((await t.as(usageOnly.secret, "GET", "/api/v1/keys")).status).toBe(403);
    // manage without usage cannot mint a usage key (the default scopes are read + usage).
    const stronger = await t.as(manager.secret, "POST", "/api/v1/keys", {});
    expect(stronger.status).toBe(403);
    expect(stronger.body.error.required_scope).toBe("usage");
    const ok = await t.as(manager.secret, "POST", "/api/v1/keys", { name: "ci", scopes: ["read"] });
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ name: "ci", scopes: ["read"], created_by: `key:${manager.id}` });
    expect((await t.as(ok.body.secret, "GET", "/api/v1/keys")).status).toBe(200);
    const bad = await t.op("POST", `/v1/accounts/${acct}/keys`, { scopes: ["admin"] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toMatch(/^scopes/);
    expect((await t.op("POST", `/v1/accounts/${acct}/keys`, { scopes: [] })).status).toBe(400);
    expect((await t.op("POST", `/v1/accounts/${acct}/keys`, { bogus: 1 })).status).toBe(400);
  });

  it("a customer sees and changes only its own keys: another account's key is 404", async () => {
    const a = await account();
    const b = await account();
    const aKey = await newKey(a, { scopes: ["read", "usage", "manage"] });
    const bKey = await newKey(b, { scopes: ["read", "usage", "manage"] });
    const aList = await t.as(aKey.secret, "GET", "/api/v1/keys");
    expect(aList.body.data.map((k: { id: string }) => k.id)).toEqual([aKey.id]);
    expect(aList.text).not.toContain(b);
    const cross = await t.as(bKey.secret, "POST", `/api/v1/keys/${aKey.id}/revoke`);
    expect(cross.status).toBe(404);
    expect(cross.body.error).toMatchObject({ code: "not_found", field: "key_id" });
    const missing = await t.as(bKey.secret, "POST", `/api/v1/keys/key_00000000000000000000000000/revoke`);
    expect(missing.body.error.message.replace(/key_\w+/, "K")).toBe(
      cross.body.error.message.replace(/key_\w+/, "K"),
    );
    expect((await t.as(aKey.secret, "GET", "/api/v1/keys")).status).toBe(200);
    // Its own key it may revoke, even the one it is using.
    const own = await t.as(aKey.secret, "POST", `/api/v1/keys/${aKey.id}/revoke`);
    expect(own.status).toBe(200);
    expect((await t.as(aKey.secret, "GET", "/api/v1/keys")).status).toBe(401);
  });

  it("operator routes: unknown account or key → 404; list pages with a cursor", async () => {
    expect((await t.op("POST", "/v1/accounts/acct_nope/keys", {})).status).toBe(404);
    expect((await t.op("GET", "/v1/accounts/acct_nope/keys")).status).toBe(404);
    expect((await t.op("POST", "/v1/keys/key_nope/revoke")).body.error.code).toBe("not_found");
    expect(
      (await t.op("POST", "/v1/accounts/acct_nope/users", { email: "a@b.co", password: "x".repeat(10) }))
        .status,
    ).toBe(404);
    const acct = await account();
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await newKey(acct, { name: `k${i}` })).id);
    const p1 = await t.op("GET", `/v1/accounts/${acct}/keys?limit=2`);
    expect(p1.body.data.map((k: { id: string }) => k.id)).toEqual(ids.slice(0, 2));
    const p2 = await t.op("GET", `/v1/accounts/${acct}/keys?limit=2&cursor=${p1.body.next_cursor}`);
    expect(p2.body).toMatchObject({ data: [{ id: ids[2] }], next_cursor: null });
    expect((await t.op("GET", `/v1/accounts/${acct}/keys?cursor=zzz`)).status).toBe(400);
  });

  it("users: validated, unique email; a token from email/password works with every scope", async () => {
    const acct = await account();
    const bad: [unknown, string][] = [
      [{ email: "not-an-email", password: "long enough password" }, "email"],
      [{ email: "a@example.com", password: "short" }, "password"],
      [{ email: "a@example.com", password: "x".repeat(257) }, "password"],
      [{ email: "a@example.com" }, "password"],
      [{ email: "a@example.com", password: "long enough password", admin: true }, "admin"],
    ];
    for (const [body, field] of bad) {
      const r = await t.op("POST", `/v1/accounts/${acct}/users`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.field).toBe(field);
    }
    const email = `Ada.${kind}@Example.com`;
    const user = await newUser(acct, email, "p".repeat(256));
    expect(user.email).toBe(email.toLowerCase());
    expect(JSON.stringify(user)).not.toContain("pppp");
    const dup = await t.op("POST", `/v1/accounts/${await account()}/users`, {
      email: email.toUpperCase(),
      password: "another password",
    });
    expect(dup.status).toBe(400);
    expect(dup.body.error).toMatchObject({ field: "email", message: "email is already registered" });
    const listed = await t.op("GET", `/v1/accounts/${acct}/users`);
    expect(listed.body.data).toEqual([user]);

    const tok = await login(email, "p".repeat(256));
    expect(tok.status).toBe(200);
    expect(tok.headers.get("cache-control")).toBe("no-store");
    expect(tok.body).toMatchObject({ token_type: "bearer", expires_in: 3600 });
    const jwt = tok.body.access_token as string;
    const claims = JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString());
    expect(claims).toMatchObject({ acct, sub: user.id, scope: "read usage manage", iss: "tally" });
    expect(claims.exp - claims.iat).toBe(3600);
    expect((await t.as(jwt, "GET", "/api/v1/keys")).status).toBe(200);
    const made = await t.as(jwt, "POST", "/api/v1/keys", { scopes: ["read", "usage", "manage"] });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ account_id: acct, created_by: `user:${user.id}` });
  });

  it("wrong password and unknown email → the same 401; expired and tampered tokens → 401", async () => {
    const acct = await account();
    const email = `grace.${kind}@example.com`;
    await newUser(acct, email);
    const wrong = await login(email, "not the password");
    const unknown = await login(`nobody.${kind}@example.com`, "not the password");
    const malformed = await login("nobody", "x");
    for (const r of [wrong, unknown, malformed]) {
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe("unauthorized");
      expect(r.body.error.message).toBe("the email or password is not valid");
    }
    expect((await login(email.toUpperCase(), "correct horse battery")).status).toBe(200);

    const jwt = (await login(email, "correct horse battery")).body.access_token as string;
    t.clock.advance(3599_000);
    expect((await t.as(jwt, "GET", "/api/v1/keys")).status).toBe(200);
    t.clock.advance(1_000);
    const expired = await t.as(jwt, "GET", "/api/v1/keys");
    expect(expired.status).toBe(401);
    expect(expired.body.error.message).toBe("the token has expired");

    const fresh = (await login(email, "correct horse battery")).body.access_token as string;
    const [h, p, s] = fresh.split(".") as [string, string, string];
    const other = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(p, "base64url").toString()), acct: "acct_someone_else" }),
    ).toString("base64url");
    const tampered = await t.as(`${h}.${other}.${s}`, "GET", "/api/v1/keys");
    expect(tampered.status).toBe(401);
    expect(tampered.body.error.message).toBe("the token is not valid");
  });

  it("the security suite passes on every customer key route", async () => {
    const acct = await account();
    const other = await account();
    const email = `suite.${kind}@example.com`;
    await newUser(acct, email);
    const full = await newKey(acct, { scopes: ["read", "usage", "manage"] });
    const reader = await newKey(acct, { scopes: ["read"] });
    const usageOnly = await newKey(acct, { scopes: ["usage"] });
    const victim = await newKey(acct, { scopes: ["read"] });
    const revoked = await newKey(acct);
    await t.op("POST", `/v1/keys/${revoked.id}/revoke`);
    const otherKey = await newKey(other, { scopes: ["read", "usage", "manage"] });
    const token = (await login(email, "correct horse battery")).body.access_token as string;
    const userId = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).sub as string;
    const expired = (
      await t.auth.signToken(
        { account_id: acct, user_id: userId, scopes: ["read", "usage", "manage"] },
        { issuedAt: t.clock.now() - 7200_000 },
      )
    ).access_token;
    const base: Omit<SecurityCredentials, "own" | "lacking"> = {
      other: otherKey.secret,
      revoked: revoked.secret,
      expired,
      token,
      operator: OPERATOR_KEY,
    };
    const snapshot = async () =>
      (await t.op("GET", `/v1/accounts/${acct}/keys`)).body.data.map(
        (k: { id: string; revoked_at: string | null }) => [k.id, k.revoked_at],
      );
    const markers = [acct, full.id, victim.id, reader.id];

    await assertCustomerRouteSecurity(
      t.base,
      { method: "GET", path: "/api/v1/keys", scope: "read", foreign: "own_data", markers },
      { ...base, own: full.secret, lacking: usageOnly.secret },
      { snapshot, ownStatus: 200 },
    );
    await assertCustomerRouteSecurity(
      t.base,
      {
        method: "POST",
        path: "/api/v1/keys",
        body: { name: "s", scopes: ["read"] },
        scope: "manage",
        foreign: "own_data",
        markers,
      },
      { ...base, own: token, lacking: reader.secret },
      { snapshot },
    );
    await assertCustomerRouteSecurity(
      t.base,
      { method: "POST", path: `/api/v1/keys/${victim.id}/revoke`, scope: "manage", foreign: "not_found" },
      { ...base, own: full.secret, lacking: reader.secret },
      { snapshot, ownStatus: 200 },
    );
    expect((await t.as(victim.secret, "GET", "/api/v1/keys")).status).toBe(401);
  });

  it("a key can be created without a body; the routes are in the OpenAPI document", async () => {
    const acct = await account();
    const r = await fetch(`${t.base}/v1/accounts/${acct}/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${OPERATOR_KEY}` },
    });
    expect(r.status).toBe(201);
    const doc = (await (await fetch(`${t.base}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    for (const path of [
      "/v1/accounts/{id}/keys",
      "/v1/keys/{key_id}/revoke",
      "/v1/accounts/{id}/users",
      "/api/v1/auth/token",
      "/api/v1/keys",
      "/api/v1/keys/{key_id}/revoke",
    ])
      expect(Object.keys(doc.paths)).toContain(path);
  });

  it("the token secret is generated once and shared through settings", async () => {
    const acct = await account();
    const second = await CustomerAuth.setup(t.store, { clock: t.clock });
    const tok = await second.signToken({ account_id: acct, user_id: "usr_x", scopes: ["read"] });
    const r = await t.as(tok.access_token, "GET", "/api/v1/keys");
    expect(r.status).toBe(200);
    const foreign = await CustomerAuth.setup(t.store, { clock: t.clock, jwtSecret: "s".repeat(32) });
    const forged = await foreign.signToken({ account_id: acct, user_id: "usr_x", scopes: ["read"] });
    expect((await t.as(forged.access_token, "GET", "/api/v1/keys")).status).toBe(401);
    await expect(CustomerAuth.setup(t.store, { jwtSecret: "short" })).rejects.toThrow(/32/);
    expect(authStoreFor(t.store)).toBe(authStoreFor(t.store));
  });
});

describe("passwords", () => {
  it("scrypt with a per-user salt; constant-time check; malformed hashes never match", async () => {
    const a = await hashPassword("correct horse battery");
    const b = await hashPassword("correct horse battery");
    expect(a).not.toBe(b);
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(await verifyPassword("correct horse battery", a)).toBe(true);
    expect(await verifyPassword("correct horse batterY", a)).toBe(false);
    for (const bad of ["", "scrypt$1$1$1$x$y", "bcrypt$...", a.replace("32768", "99999999")])
      expect(await verifyPassword("correct horse battery", bad)).toBe(false);
  });
});
