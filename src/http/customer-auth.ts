import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { systemClock, type Clock } from "../domain/clock.ts";
import { TallyError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import {
  authStoreFor,
  SCOPES,
  withoutHash,
  type ApiKeyRecord,
  type AuthStore,
  type CustomerUserRecord,
  type Scope,
} from "../store/auth-store.ts";
import type { Page, Store } from "../store/types.ts";
import { newSecret, sha256 } from "./auth.ts";

export { SCOPES, type Scope } from "../store/auth-store.ts";

/** Who a customer request is: one account, what it may do, and the credential that proved it. */
export interface CustomerPrincipal {
  account_id: string;
  scopes: Set<Scope>;
  credential: "api_key" | "jwt";
  /** The API key used (credential "api_key"). */
  key_id?: string;
  /** The user the token was issued to (credential "jwt"). */
  user_id?: string;
}

declare module "fastify" {
  interface FastifyRequest {
    /** Set by CustomerAuth.hook() on customer routes. Read it with principalOf(req). */
    customer?: CustomerPrincipal;
  }
}

export interface CustomerAuthOptions {
  /** Time for token issue/expiry and last_used_at; the engine's clock in the server. */
  clock?: Clock;
  /** HS256 secret, ≥ 32 characters. Default: TALLY_JWT_SECRET, else one generated once and kept in settings. */
  jwtSecret?: string;
  /** Lifetime of tokens from POST /api/v1/auth/token. Default 3600. */
  tokenTtlSeconds?: number;
  /** last_used_at is written at most once per this interval per key. Default 60,000. */
  touchIntervalMs?: number;
  /** Active (unrevoked) keys an account may hold. Default 100. */
  maxActiveKeysPerAccount?: number;
}

export interface TokenResponse {
  access_token: string;
  token_type: "bearer";
  expires_in: number;
}

export const API_KEY_PREFIX = "tly_live_";
/** How much of a secret stays visible in listings: the prefix and 8 random characters. */
const VISIBLE_CHARS = API_KEY_PREFIX.length + 8;
const API_KEY_SHAPE = /^tly_live_[A-Za-z0-9_-]{32}$/;
const JWT_SHAPE = /^[A-Za-z0-9_-]{1,512}\.[A-Za-z0-9_-]{1,1024}\.[A-Za-z0-9_-]{1,512}$/;
const ACCOUNT_ID_SHAPE = /^[A-Za-z0-9_\-.:]{1,128}$/;
const JWT_SECRET_SETTING = "customer_jwt_secret";
const ISSUER = "tally";
const AUDIENCE = "tally:customer";
const USER_SCOPES: Scope[] = ["read", "usage", "manage"];

/**
 * Customer credentials: API keys (`tly_live_…`, stored as SHA-256, scoped, revocable) and users (email +
 * scrypt password) who exchange their password for a short-lived HS256 JWT. Either is sent as
 * `Authorization: Bearer <api key or JWT>` and resolves to a CustomerPrincipal of exactly one account.
 */
export class CustomerAuth {
  readonly clock: Clock;
  readonly tokenTtlSeconds: number;
  private readonly touchIntervalMs: number;
  private readonly maxActiveKeys: number;
  private dummyHash: Promise<string> | null = null;

  private constructor(
    readonly store: AuthStore,
    private readonly secret: Uint8Array,
    opts: CustomerAuthOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.tokenTtlSeconds = opts.tokenTtlSeconds ?? 3600;
    this.touchIntervalMs = opts.touchIntervalMs ?? 60_000;
    this.maxActiveKeys = opts.maxActiveKeysPerAccount ?? 100;
    if (!Number.isInteger(this.tokenTtlSeconds) || this.tokenTtlSeconds < 1)
      throw new Error("tokenTtlSeconds must be a positive integer");
  }

  static async setup(store: Store, opts: CustomerAuthOptions = {}): Promise<CustomerAuth> {
    const configured = opts.jwtSecret ?? process.env.TALLY_JWT_SECRET;
    let secret: Uint8Array;
    if (configured) {
      if (configured.length < 32) throw new Error("TALLY_JWT_SECRET must be at least 32 characters");
      secret = new TextEncoder().encode(configured);
    } else {
      const inForce = await store.putSettingIfAbsent(
        JWT_SECRET_SETTING,
        randomBytes(32).toString("base64url"),
      );
      secret = Buffer.from(inForce, "base64url");
    }
    return new CustomerAuth(authStoreFor(store), secret, opts);
  }

  // ---------- authentication ----------

  /** The principal of `Authorization: Bearer <api key or JWT>`, or `unauthorized`. */
  async authenticate(req: FastifyRequest): Promise<CustomerPrincipal> {
    const h = req.headers.authorization;
    if (typeof h !== "string" || h.trim() === "")
      throw unauthorized("missing Authorization: Bearer <api key or token>");
    const m = /^Bearer\s+(\S{1,2048})$/i.exec(h.trim());
    if (!m) throw unauthorized("the Authorization header must be Bearer <api key or token>");
    return this.verifyCredential(m[1]!, req.log);
  }

  /** The principal of a raw API key or JWT, or `unauthorized`. */
  async verifyCredential(
    credential: string,
    log?: { warn(obj: object, msg: string): void },
  ): Promise<CustomerPrincipal> {
    if (credential.startsWith(API_KEY_PREFIX)) return this.verifyApiKey(credential, log);
    if (JWT_SHAPE.test(credential)) return this.verifyJwt(credential);
    throw unauthorized("the credential is neither an API key nor a token");
  }

  private async verifyApiKey(
    key: string,
    log?: { warn(obj: object, msg: string): void },
  ): Promise<CustomerPrincipal> {
    if (!API_KEY_SHAPE.test(key)) throw unauthorized("the API key is not valid");
    const rec = await this.store.findKeyBySecretHash(sha256(key).toString("hex"));
    if (!rec) throw unauthorized("the API key is not valid");
    if (rec.revoked_at !== null) throw unauthorized("the API key has been revoked");
    const now = this.clock.now();
    if (rec.last_used_at === null || now - rec.last_used_at >= this.touchIntervalMs) {
      // Best effort: a failed bookkeeping write must not refuse a valid key.
      await this.store.touchKey(rec.id, now, this.touchIntervalMs).catch((err: unknown) => {
        log?.warn({ err, key_id: rec.id }, "could not record API key use");
      });
    }
    return { account_id: rec.account_id, scopes: new Set(rec.scopes), credential: "api_key", key_id: rec.id };
  }

  private async verifyJwt(token: string): Promise<CustomerPrincipal> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.secret, {
        algorithms: ["HS256"],
        issuer: ISSUER,
        audience: AUDIENCE,
        currentDate: new Date(this.clock.now()),
        requiredClaims: ["exp", "iat", "sub"],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw unauthorized("the token has expired");
      throw unauthorized("the token is not valid");
    }
    const acct = payload.acct;
    if (typeof acct !== "string" || !ACCOUNT_ID_SHAPE.test(acct) || typeof payload.scope !== "string")
      throw unauthorized("the token is not valid");
    const named = new Set(payload.scope.split(" "));
    return {
      account_id: acct,
      scopes: new Set(SCOPES.filter((s) => named.has(s))),
      credential: "jwt",
      ...(payload.sub ? { user_id: payload.sub } : {}),
    };
  }

  /** Fastify onRequest hook: authenticates and puts the principal on `req.customer` (once per request). */
  hook(): (req: FastifyRequest) => Promise<void> {
    return async (req) => {
      if (!req.customer) req.customer = await this.authenticate(req);
    };
  }

  // ---------- users and tokens ----------

  /** A customer user of an account. The email is unique across accounts (a login names no account). */
  async createUser(accountId: string, email: string, password: string): Promise<CustomerUserRecord> {
    const normalized = normalizeEmail(email);
    checkPassword(password);
    if (await this.store.findUserByEmail(normalized)) throw emailTaken();
    const user = {
      id: newId("usr", this.clock.now()),
      account_id: accountId,
      email: normalized,
      password_hash: await hashPassword(password),
      created_at: this.clock.now(),
    };
    if (!(await this.store.insertUser(user))) throw emailTaken();
    return withoutHash(user);
  }

  listUsers(accountId: string): Promise<CustomerUserRecord[]> {
    return this.store.listUsers(accountId);
  }

  /**
   * Email + password → a token. An unknown email and a wrong password get the same answer, after the same
   * work (a password is checked against a stand-in hash when there is no user).
   */
  async issueToken(email: string, password: string): Promise<TokenResponse> {
    // No shape check here: a malformed email is just an unknown one (same answer, same work).
    const user = await this.store.findUserByEmail(email.trim().toLowerCase());
    const ok = await verifyPassword(password, user?.password_hash ?? (await this.standInHash()));
    if (!user || !ok) throw unauthorized("the email or password is not valid");
    return this.signToken({ account_id: user.account_id, user_id: user.id, scopes: USER_SCOPES });
  }

  /** Signs a customer token. `issuedAt` (epoch ms, default now) and `ttlSeconds` are for tests and tools. */
  async signToken(
    claims: { account_id: string; user_id: string; scopes: readonly Scope[] },
    opts: { issuedAt?: number; ttlSeconds?: number } = {},
  ): Promise<TokenResponse> {
    const ttl = opts.ttlSeconds ?? this.tokenTtlSeconds;
    const iat = Math.floor((opts.issuedAt ?? this.clock.now()) / 1000);
    const access_token = await new SignJWT({
      acct: claims.account_id,
      scope: SCOPES.filter((s) => claims.scopes.includes(s)).join(" "),
    })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(claims.user_id)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttl)
      .sign(this.secret);
    return { access_token, token_type: "bearer", expires_in: ttl };
  }

  private standInHash(): Promise<string> {
    this.dummyHash ??= hashPassword(randomBytes(16).toString("hex"));
    return this.dummyHash;
  }

  // ---------- API keys ----------

  /** A new key; the secret is returned here and never again (only its SHA-256 is stored). */
  async createKey(
    accountId: string,
    input: { name: string; scopes: readonly Scope[]; created_by: string },
  ): Promise<{ key: ApiKeyRecord; secret: string }> {
    if ((await this.store.countActiveKeys(accountId)) >= this.maxActiveKeys)
      throw new TallyError(
        "validation_error",
        `an account holds at most ${this.maxActiveKeys} active API keys; revoke one first`,
        { field: "account_id" },
      );
    const scopes = SCOPES.filter((s) => input.scopes.includes(s));
    if (scopes.length === 0) throw TallyError.validation("scopes", "must name at least one scope");
    const secret = newSecret(API_KEY_PREFIX.slice(0, -1));
    const now = this.clock.now();
    const key: ApiKeyRecord = {
      id: newId("key", now),
      account_id: accountId,
      name: input.name,
      prefix: secret.slice(0, VISIBLE_CHARS),
      scopes,
      created_by: input.created_by,
      created_at: now,
      last_used_at: null,
      revoked_at: null,
    };
    await this.store.insertKey({ ...key, secret_sha256: sha256(secret).toString("hex") });
    return { key, secret };
  }

  listKeys(accountId: string, cursor: string | undefined, limit: number): Promise<Page<ApiKeyRecord>> {
    return this.store.listKeys(accountId, cursor, limit);
  }

  /**
   * Revokes a key (idempotent: revoking again returns it unchanged). With `accountId`, a key of any other
   * account is `not_found`, exactly as a key that does not exist: a customer learns nothing about others.
   */
  async revokeKey(keyId: string, accountId?: string): Promise<ApiKeyRecord> {
    const found = await this.store.getKey(keyId);
    if (!found || (accountId !== undefined && found.account_id !== accountId))
      throw TallyError.notFound("API key", keyId, "key_id");
    return (await this.store.revokeKey(keyId, this.clock.now()))!;
  }
}

// ---------- scopes ----------

/** `forbidden` unless the principal holds the scope. */
export function requireScope(principal: CustomerPrincipal, scope: Scope): void {
  if (!principal.scopes.has(scope))
    throw new TallyError("forbidden", `this credential lacks the "${scope}" scope`, {
      field: "authorization",
      required_scope: scope,
    });
}

/** The principal put on the request by CustomerAuth.hook(); `unauthorized` if there is none (fails closed). */
export function principalOf(req: FastifyRequest): CustomerPrincipal {
  if (!req.customer) throw unauthorized("missing Authorization: Bearer <api key or token>");
  return req.customer;
}

/** Fastify onRequest/preHandler hook (after CustomerAuth.hook()): `forbidden` without the scope. */
export function scopeHook(scope: Scope): (req: FastifyRequest) => Promise<void> {
  return async (req) => requireScope(principalOf(req), scope);
}

/**
 * Route options for a customer route: authenticate, then require `scope`, both before the body is parsed,
 * so a request without the right credential gets 401/403 whatever its body.
 */
export function customerRoute(auth: CustomerAuth, scope: Scope) {
  return { onRequest: [auth.hook(), scopeHook(scope)] };
}

// ---------- passwords ----------

export const PASSWORD_MIN = 10;
export const PASSWORD_MAX = 256;
const SCRYPT_N = 32768;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const SCRYPT_KEYLEN = 32;

function scrypt(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

function scryptOptions(N: number, r: number, p: number): ScryptOptions {
  return { N, r, p, maxmem: 256 * N * r + 16 * 1024 * 1024 };
}

/** `scrypt$N$r$p$<salt>$<hash>` (base64url), with a fresh 16-byte salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(
    password.normalize("NFC"),
    salt,
    SCRYPT_KEYLEN,
    scryptOptions(SCRYPT_N, SCRYPT_R, SCRYPT_P),
  );
  return `scrypt$${SCRYPT_N}$${SCRYPT_R}$${SCRYPT_P}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

/** Constant-time check of a password against a stored hash; false for anything malformed. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![N, r, p].every((x) => Number.isInteger(x) && x > 0) || N > 1 << 20 || r > 32 || p > 16) return false;
  const salt = Buffer.from(parts[4]!, "base64url");
  const expected = Buffer.from(parts[5]!, "base64url");
  // A bound on work, not the length rule (PASSWORD_MAX counts code points; a code point is ≤ 2 units).
  if (salt.length < 8 || expected.length < 16 || password.length > 2 * PASSWORD_MAX) return false;
  const actual = await scrypt(password.normalize("NFC"), salt, expected.length, scryptOptions(N, r, p));
  return timingSafeEqual(actual, expected);
}

function checkPassword(password: string): void {
  const n = [...password].length;
  if (n < PASSWORD_MIN)
    throw TallyError.validation("password", `must have at least ${PASSWORD_MIN} characters`);
  if (n > PASSWORD_MAX)
    throw TallyError.validation("password", `must have at most ${PASSWORD_MAX} characters`);
}

// ---------- helpers ----------

const EMAIL_SHAPE = /^[^\s@]{1,64}@[^\s@]{1,189}\.[^\s@]{1,63}$/;

/** Lowercased and trimmed; `validation_error` on field email unless it looks like one. */
export function normalizeEmail(email: string): string {
  const e = email.trim().toLowerCase();
  if (e.length > 254 || !EMAIL_SHAPE.test(e))
    throw TallyError.validation("email", "must be an email address");
  return e;
}

function emailTaken(): TallyError {
  return new TallyError("validation_error", "email is already registered", { field: "email" });
}

function unauthorized(message: string): TallyError {
  return new TallyError("unauthorized", message, { field: "authorization" });
}
