import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { Redis } from "ioredis";
import type pg from "pg";
import {
  RateLimiterMemory,
  RateLimiterPostgres,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from "rate-limiter-flexible";
import { TallyError } from "../domain/errors.ts";
import type { Store } from "../store/types.ts";
import { billingStoreFor } from "../store/billing-store.ts";
import type { OperatorAuth } from "./auth.ts";
import type { CustomerAuth, CustomerPrincipal } from "./customer-auth.ts";

/**
 * Rate limiting (rate-limiter-flexible), as one Fastify plugin with a root `onRequest` hook.
 *
 * Who is counted:
 * - the operator key on `/v1` → the `operator` policy, one budget;
 * - a customer credential on `/api/v1` → its account's tier (`metadata.rate_limit_tier`, else the default
 *   tier), one budget per API key (`key_id`) or per token subject (the user, whatever token it holds). The
 *   credential is authenticated here, once: the principal is left on `req.customer`, so the route's own auth
 *   hook does not verify it again;
 * - anything else (no credential, a wrong one, a customer key on `/v1`, unknown routes) → the `anonymous`
 *   policy, per client IP (`req.ip`). A wrong credential never gets a budget of its own, so inventing
 *   credentials gains nothing; the route still answers it with its own 401.
 * `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and `/docs` are never counted.
 *
 * A policy is one or more fixed windows (e.g. 50/s and 3,000/min); a request takes one point from each.
 * A request refused by one window gets its point back in the others, so a client hammering the
 * per-second limit does not also drain its per-minute budget with requests that were never served.
 *
 * Headers: the IETF draft's separate fields (draft-ietf-httpapi-ratelimit-headers-07), on every counted
 * response, including errors: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (delta seconds)
 * describe the window closest to exhaustion, and `RateLimit-Policy` lists every window (`50;w=1, 3000;w=60`).
 * Over the limit: 429 `rate_limited` in the one error shape, with `Retry-After` (seconds) and
 * `retry_after_s` in the body. The later drafts' combined `RateLimit`/`RateLimit-Policy` structured fields
 * are not sent: clients and proxies read the separate fields today.
 *
 * Backends: `memory` (one node; the default), `postgres` (an UNLOGGED table `tally_rate_limits` on the
 * store's pool; a PostgreSQL store only) or `redis` (`REDIS_URL`), so several nodes share one budget. The
 * shared backends fall back to an in-memory limiter of the same policy while the backend fails, so an outage
 * of Redis or the table neither refuses every request nor lifts every limit. `off` registers nothing.
 */

/** A fixed window: `points` requests per `duration` seconds. */
export interface RateWindow {
  points: number;
  duration: number;
}

/** Windows, or their text form: `"50/s, 3000/min"` (units s, min, h, d; `"100/10s"` for 100 per 10 s). */
export type RatePolicy = readonly RateWindow[] | string;

export type RateLimitBackend = "off" | "memory" | "postgres" | "redis";
export const RATE_LIMIT_BACKENDS: readonly RateLimitBackend[] = ["off", "memory", "postgres", "redis"];

/** The rate-limit tier of the account's active subscription's plan, if any. */
async function planTierOf(store: Store, accountId: string): Promise<string | null> {
  const db = billingStoreFor(store);
  const sub = await db.activeSubscriptionOf(accountId);
  return sub ? ((await db.getPlan(sub.plan_id))?.rate_limit_tier ?? null) : null;
}

/** Customer plan tiers. Generous enough for interactive use and the seed's example client. */
export const DEFAULT_TIERS: Readonly<Record<string, RatePolicy>> = {
  free: "10/s, 300/min",
  standard: "50/s, 3000/min",
  business: "200/s, 12000/min",
};
export const DEFAULT_TIER = "standard";
/** The operator key meters usage for every customer: a circuit breaker, not a quota. */
export const DEFAULT_OPERATOR_POLICY: RatePolicy = "100000/s";
/**
 * Per client IP, for requests without a valid credential. Generous: without `trustProxy` every client behind
 * a reverse proxy shares the proxy's address.
 */
export const DEFAULT_ANONYMOUS_POLICY: RatePolicy = "1000/s, 20000/min";

/** What a deployment sets (AppOptions.rateLimit); each falls back to the environment, then the default. */
export interface RateLimitSettings {
  /** Default: TALLY_RATE_LIMIT, else "memory". */
  backend?: RateLimitBackend;
  /** For backend "redis": a client the caller owns (not closed here). */
  redis?: Redis;
  /** For backend "redis" without a client. Default: REDIS_URL, else redis://127.0.0.1:6379. */
  redisUrl?: string;
  /**
   * Customer tiers by name, merged over DEFAULT_TIERS and TALLY_RATE_LIMIT_TIERS (a JSON object of name →
   * policy text; its `operator` and `anonymous` entries set those policies).
   */
  tiers?: Record<string, RatePolicy>;
  /** The tier of an account without a known `metadata.rate_limit_tier`. Default "standard". */
  defaultTier?: string;
  operatorPolicy?: RatePolicy;
  anonymousPolicy?: RatePolicy;
  /** How long an account's tier is remembered, in ms. Default 30,000. */
  tierCacheMs?: number;
  /** Prefix of every counter key (Redis keys, table rows). Default "tally_rl". */
  keyPrefix?: string;
}

export interface RateLimitOptions extends RateLimitSettings {
  store: Store;
  operator: OperatorAuth;
  customerAuth: CustomerAuth;
}

const EXEMPT = new Set(["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]);
const TABLE = "tally_rate_limits";
const TIER_CACHE_MAX = 10_000;
const UNITS: Record<string, number> = {
  s: 1,
  sec: 1,
  second: 1,
  m: 60,
  min: 60,
  minute: 60,
  h: 3600,
  hour: 3600,
  d: 86400,
  day: 86400,
};

/** Windows from a policy (validated): every window a positive whole number of points and seconds. */
export function parsePolicy(policy: RatePolicy, name = "policy"): RateWindow[] {
  const windows =
    typeof policy === "string"
      ? policy
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "")
          .map((part) => {
            const m = /^(\d+)\s*\/\s*(\d*)\s*([a-z]+)$/i.exec(part);
            const unit = m ? UNITS[m[3]!.toLowerCase()] : undefined;
            if (!m || unit === undefined)
              throw new Error(`rate limit ${name}: "${part}" is not <points>/<unit> (units s, min, h, d)`);
            return { points: Number(m[1]), duration: (m[2] ? Number(m[2]) : 1) * unit };
          })
      : policy.map((w) => ({ points: w.points, duration: w.duration }));
  if (windows.length === 0) throw new Error(`rate limit ${name}: no window`);
  for (const w of windows)
    if (
      !Number.isSafeInteger(w.points) ||
      w.points < 1 ||
      !Number.isSafeInteger(w.duration) ||
      w.duration < 1
    )
      throw new Error(`rate limit ${name}: points and duration must be positive whole numbers`);
  return windows;
}

/** The policy's `RateLimit-Policy` value, e.g. `50;w=1, 3000;w=60`. */
export function policyHeader(windows: readonly RateWindow[]): string {
  return windows.map((w) => `${w.points};w=${w.duration}`).join(", ");
}

function backendFrom(value: string | undefined): RateLimitBackend {
  const v = (value ?? "memory").trim().toLowerCase() || "memory";
  if (!(RATE_LIMIT_BACKENDS as readonly string[]).includes(v))
    throw new Error(`TALLY_RATE_LIMIT must be one of ${RATE_LIMIT_BACKENDS.join(", ")}, not "${value}"`);
  return v as RateLimitBackend;
}

function envPolicies(): Record<string, RatePolicy> {
  const raw = process.env.TALLY_RATE_LIMIT_TIERS;
  if (!raw?.trim()) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error("TALLY_RATE_LIMIT_TIERS must be a JSON object of tier → policy");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Error("TALLY_RATE_LIMIT_TIERS must be a JSON object of tier → policy");
  return parsed as Record<string, RatePolicy>;
}

/** One window's counter and its limit. */
interface Counter {
  window: RateWindow;
  limiter: RateLimiterAbstract;
}

interface Policy {
  name: string;
  windows: RateWindow[];
  counters: Counter[];
  header: string;
}

/** The outcome of one window for one request. */
type Outcome = Counted | { kind: "failed"; counter: Counter; err: unknown };
type Counted = { kind: "ok" | "over"; counter: Counter; res: RateLimiterRes };

async function rateLimitPlugin(app: FastifyInstance, opts: RateLimitOptions): Promise<void> {
  const backend = opts.backend ?? backendFrom(process.env.TALLY_RATE_LIMIT);
  if (!RATE_LIMIT_BACKENDS.includes(backend)) throw new Error(`unknown rate limit backend "${backend}"`);
  if (backend === "off") return;
  const { store, operator, customerAuth } = opts;
  const prefix = opts.keyPrefix ?? "tally_rl";
  const tierCacheMs = opts.tierCacheMs ?? 30_000;
  const fromEnv = envPolicies();
  const { operator: envOperator, anonymous: envAnonymous, ...envTiers } = fromEnv;
  const tierPolicies = new Map<string, RatePolicy>(
    Object.entries({ ...DEFAULT_TIERS, ...envTiers, ...opts.tiers }),
  );
  const defaultTier = opts.defaultTier ?? DEFAULT_TIER;
  if (!tierPolicies.has(defaultTier))
    throw new Error(`rate limit: the default tier "${defaultTier}" is not defined`);

  // ---------- counters ----------
  let makeLimiter: (keyPrefix: string, w: RateWindow) => Promise<RateLimiterAbstract>;
  if (backend === "memory") {
    makeLimiter = async (keyPrefix, w) => new RateLimiterMemory({ keyPrefix, ...w });
  } else if (backend === "postgres") {
    if (store.dialect !== "postgres")
      throw new Error("TALLY_RATE_LIMIT=postgres needs a PostgreSQL store (DATABASE_URL=postgres://…)");
    const pool = (store as unknown as { pool: pg.Pool }).pool;
    // Counters need no durability: UNLOGGED skips the WAL, so a counted request costs no WAL flush. The
    // columns are rate-limiter-flexible's own; its CREATE TABLE IF NOT EXISTS then finds the table.
    try {
      await pool.query(
        `CREATE UNLOGGED TABLE IF NOT EXISTS ${TABLE} (key varchar(255) PRIMARY KEY, points integer NOT NULL DEFAULT 0, expire bigint)`,
      );
    } catch (err) {
      // Two nodes starting at once race on the catalog; the other one created it.
      if ((err as { code?: string }).code !== "23505") throw err;
    }
    let first = true;
    makeLimiter = (keyPrefix, w) =>
      new Promise((resolve, reject) => {
        const sweeper = first; // one limiter deletes expired rows (every 5 minutes) for the shared table
        first = false;
        const limiter: RateLimiterPostgres = new RateLimiterPostgres(
          {
            storeClient: pool,
            storeType: "pool",
            tableName: TABLE,
            keyPrefix,
            ...w,
            clearExpiredByTimeout: sweeper,
            insuranceLimiter: new RateLimiterMemory({ keyPrefix, ...w }),
          },
          (err?: unknown) => (err ? reject(err as Error) : resolve(limiter)),
        );
      });
  } else {
    let client = opts.redis;
    if (!client) {
      const url = opts.redisUrl ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
      const own = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
      own.on("error", (err: Error) => app.log.warn({ err }, "rate limit: redis error"));
      try {
        await own.connect();
      } catch (err) {
        own.disconnect();
        throw new Error(`rate limit: cannot connect to Redis at ${redacted(url)}: ${String(err)}`);
      }
      app.addHook("onClose", async () => {
        await own.quit().catch(() => own.disconnect());
      });
      client = own;
    }
    const redis = client;
    makeLimiter = async (keyPrefix, w) =>
      new RateLimiterRedis({
        storeClient: redis,
        keyPrefix,
        ...w,
        insuranceLimiter: new RateLimiterMemory({ keyPrefix, ...w }),
      });
  }

  const makePolicy = async (name: string, policy: RatePolicy): Promise<Policy> => {
    const windows = parsePolicy(policy, name);
    const counters: Counter[] = [];
    for (const w of windows)
      counters.push({ window: w, limiter: await makeLimiter(`${prefix}:${name}:${w.duration}`, w) });
    return { name, windows, counters, header: policyHeader(windows) };
  };
  const operatorPolicy = await makePolicy(
    "operator",
    opts.operatorPolicy ?? envOperator ?? DEFAULT_OPERATOR_POLICY,
  );
  const anonymousPolicy = await makePolicy(
    "anonymous",
    opts.anonymousPolicy ?? envAnonymous ?? DEFAULT_ANONYMOUS_POLICY,
  );
  const tiers = new Map<string, Policy>();
  for (const [name, policy] of tierPolicies) tiers.set(name, await makePolicy(`tier:${name}`, policy));

  // ---------- tiers of accounts ----------
  const tierCache = new Map<string, { tier: Promise<string>; until: number }>();
  const tierOf = (accountId: string): Promise<string> => {
    const now = Date.now();
    const hit = tierCache.get(accountId);
    if (hit && hit.until > now) return hit.tier;
    const tier = Promise.all([store.getAccount(accountId), planTierOf(store, accountId)]).then(
      ([acct, planTier]) => {
        // An account's own tier (metadata) wins; then its plan's; then the default.
        const named = acct?.metadata?.rate_limit_tier;
        if (typeof named === "string" && tiers.has(named)) return named;
        return planTier !== null && tiers.has(planTier) ? planTier : defaultTier;
      },
    );
    tierCache.delete(accountId);
    tierCache.set(accountId, { tier, until: now + tierCacheMs });
    if (tierCache.size > TIER_CACHE_MAX) tierCache.delete(tierCache.keys().next().value!);
    tier.catch(() => tierCache.delete(accountId));
    return tier;
  };

  // ---------- who is asking ----------
  type Who = { policy: Policy; key: string };
  const asOperator: Who = { policy: operatorPolicy, key: "operator" };
  /** A customer credential on /api/v1: its tier and subject, or null when it is not a valid one. */
  const identifyCustomer = async (req: FastifyRequest): Promise<Who | null> => {
    let principal: CustomerPrincipal | null = null;
    try {
      principal = req.customer ?? (await customerAuth.authenticate(req));
    } catch {
      // Not a valid credential: counted per IP; the route answers it.
    }
    if (!principal) return null;
    req.customer = principal;
    const tier = await tierOf(principal.account_id);
    const subject = principal.key_id
      ? `key:${principal.key_id}`
      : principal.user_id
        ? `user:${principal.user_id}`
        : `account:${principal.account_id}`;
    return { policy: tiers.get(tier)!, key: subject };
  };
  const anonymous = (req: FastifyRequest): Who => ({ policy: anonymousPolicy, key: `ip:${req.ip}` });
  /** Who is asking: at once for the operator key and anonymous requests (no promise to wait for). */
  const identify = (req: FastifyRequest, path: string): Who | Promise<Who> => {
    if (path === "/v1" || path.startsWith("/v1/")) {
      if (operator.verifies(req)) return asOperator;
    } else if (path.startsWith("/api/v1/") && req.headers.authorization !== undefined) {
      return identifyCustomer(req).then((who) => who ?? anonymous(req));
    }
    return anonymous(req);
  };

  const outcomeOf = (counter: Counter, key: string): Promise<Outcome> =>
    counter.limiter.consume(key).then(
      (res): Outcome => ({ kind: "ok", counter, res }),
      (err: unknown): Outcome =>
        err instanceof RateLimiterRes
          ? { kind: "over", counter, res: err }
          : { kind: "failed", counter, err },
    );

  app.addHook("onRequest", async (req: FastifyRequest, reply: FastifyReply) => {
    const url = req.url;
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (EXEMPT.has(path) || path.startsWith("/docs/")) return;
    const found = identify(req, path);
    const { policy, key } = found instanceof Promise ? await found : found;
    const counters = policy.counters;
    const outcomes: Outcome[] =
      counters.length === 1
        ? [await outcomeOf(counters[0]!, key)]
        : await Promise.all(counters.map((counter) => outcomeOf(counter, key)));
    // One pass: the first failure (logged), whether any window refused, and the window to show — the
    // refusing one that frees up last, else the one closest to exhaustion.
    let failed: { err: unknown } | null = null;
    let over: Counted | null = null;
    let ok: Counted | null = null;
    const served: Counter[] = [];
    for (const o of outcomes) {
      if (o.kind === "failed") {
        failed ??= { err: o.err };
      } else if (o.kind === "over") {
        if (over === null || o.res.msBeforeNext > over.res.msBeforeNext) over = o;
      } else {
        served.push(o.counter);
        if (
          ok === null ||
          o.res.remainingPoints < ok.res.remainingPoints ||
          (o.res.remainingPoints === ok.res.remainingPoints && o.res.msBeforeNext > ok.res.msBeforeNext)
        )
          ok = o;
      }
    }
    if (failed !== null)
      req.log.warn({ err: failed.err, policy: policy.name }, "rate limit: a counter failed; not counted");
    const shown = over ?? ok;
    if (shown === null) return; // every counter failed: fail open rather than refuse everything
    const resetS = Math.max(0, Math.ceil(shown.res.msBeforeNext / 1000));
    void reply.header("ratelimit-limit", String(shown.counter.window.points));
    void reply.header("ratelimit-remaining", String(over ? 0 : shown.res.remainingPoints));
    void reply.header("ratelimit-reset", String(resetS));
    void reply.header("ratelimit-policy", policy.header);
    if (over === null) return;
    // Refused: the point goes back to the windows that had room, so unserved requests spend nothing there.
    await Promise.all(served.map((c) => c.limiter.reward(key).catch(() => undefined)));
    const retryAfterS = Math.max(1, resetS);
    const w = shown.counter.window;
    throw new TallyError(
      "rate_limited",
      `rate limit exceeded: ${w.points} requests per ${w.duration} s; retry in ${retryAfterS} s`,
      { retry_after_s: retryAfterS, limit: w.points, window_s: w.duration },
    );
  });
}

function redacted(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(an invalid URL)";
  }
}

/**
 * The plugin (hooks apply to the whole app). Register it before the routes:
 * `await app.register(rateLimit, { ...opts.rateLimit, store: engine.store, operator, customerAuth })`.
 */
export const rateLimit = fp(rateLimitPlugin, { name: "tally-rate-limit", fastify: "5.x" });
