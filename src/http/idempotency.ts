import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { systemClock, type Clock } from "../domain/clock.ts";
import { TallyError } from "../domain/errors.ts";
import { canonical } from "../ledger/request.ts";
import {
  idempotencyStoreFor,
  type IdempotencyId,
  type IdempotencyRecord,
  type IdempotencyStore,
  type StoredAnswer,
} from "../store/idempotency-store.ts";
import type { Store } from "../store/types.ts";
import type { CustomerPrincipal } from "./customer-auth.ts";

/**
 * `Idempotency-Key` on every POST of the HTTP API (operator `/v1` and customer `/api/v1`).
 *
 * Register once at the root, before the routes: `await app.register(idempotency, { store, clock })`.
 * It adds root hooks (preValidation, preHandler, onSend, onResponse) and does nothing to requests without
 * the header or that are not POSTs.
 *
 * Semantics:
 * - A record is named by (caller, method, route pattern, key). The caller is "operator" on `/v1` routes and
 *   "account:<id>" for a customer credential, so two customers (or a customer and the operator) may use the
 *   same key independently. Routes with no caller (`POST /api/v1/auth/token`) ignore the header.
 * - It holds the SHA-256 of the request: method, URL (path and query as sent) and the body as parsed
 *   (canonical JSON: key order and whitespace do not matter).
 * - Same key, same request: the first answer is replayed byte for byte (status, body, content-type,
 *   cache-control, location) with `Idempotent-Replayed: true`; nothing runs again.
 * - Same key, another request (another body, or another URL of the same route, e.g. another account's
 *   grants): 409 `idempotency_conflict`, field `Idempotency-Key`. One key on two different routes names two
 *   different records.
 * - Concurrent requests with the same key: exactly one runs; the others wait for its answer and replay it
 *   (a pending record in the database is the lock, so this holds across API nodes; waiters on the same node
 *   are woken at once, others poll). A waiter still waiting after `waitTimeoutMs` gets 409
 *   `idempotency_conflict` with `in_progress: true` and `Retry-After: 1`. If the node running the first
 *   request dies, its lease (`leaseMs`) runs out and a retry of the same request takes over and runs it.
 *   (A crash between the command's commit and the storing of its answer can thus run it twice; commands
 *   that carry their own `id`, such as usage events, are protected by the ledger's own idempotency.)
 * - What is kept: the answers of requests that ran, status below 500. A 4xx is a refusal the retry gets
 *   again (e.g. 402 insufficient_credits stays 402 for that key even after a top-up: use a new key; 404,
 *   409 likewise). Not kept, so the retry runs again: 5xx; 400 validation_error (the request is malformed
 *   and nothing ran, so the key stays free for the corrected request, whether the schema or the handler
 *   found the fault, as at Stripe); and the refusals about the credential or the moment rather than the
 *   request (401, 403, 429). Requests refused before they run (no or wrong credential, rate limited, a body
 *   too large) leave no record either.
 * - A replay to a customer credential needs every scope of the credential that made the first request
 *   (else 403 forbidden), so a read-only key cannot read what a manage key's request answered.
 * - Kept for `ttlMs` (default 24 h) after the answer; after that the key may be used for anything. A sweep
 *   deletes expired records every `sweepIntervalMs` (an expired record is also replaced when its key comes
 *   back, so correctness does not depend on the sweep).
 * - Secrets: an answer that carries a secret (API key creation, `POST /v1/accounts/:id/keys` and
 *   `POST /api/v1/keys`, and any answer marked `Cache-Control: no-store`) is stored sealed with
 *   AES-256-GCM under a key derived (HKDF-SHA256) from the bearer credential of the request, which the
 *   database never holds in clear (it keeps only SHA-256 of keys). A retry with the same credential gets
 *   the secret again, byte for byte; a retry with another credential gets 409 `idempotency_conflict`
 *   (nothing runs again, no second key is created). Token issue (`POST /api/v1/auth/token`) is never
 *   stored: it changes nothing and has no caller.
 * - Key format: 1–255 printable ASCII characters (0x20–0x7E), else 400 `validation_error`, field
 *   `Idempotency-Key`. The header is ignored on other methods (PUT, DELETE are idempotent by nature).
 */
export interface IdempotencyOptions {
  /** The main store; the records live in its database (table idempotency_keys). */
  store: Store;
  /** Time of created_at / expires_at / leases; the engine's clock. Default: the system clock. */
  clock?: Clock;
  /** How long an answer is kept. Default 24 h. */
  ttlMs?: number;
  /** How long a running first request holds its key before a retry may take over. Default 60 s. */
  leaseMs?: number;
  /** How long a concurrent duplicate waits for the first answer before 409 "in progress". Default 10 s. */
  waitTimeoutMs?: number;
  /** How often expired records are deleted; 0 turns the sweep off. Default 10 min. */
  sweepIntervalMs?: number;
  /** Who is calling (the record's scope), or null to ignore the header. Default: defaultCaller. */
  callerOf?: (req: FastifyRequest) => string | null;
}

/** How a route treats the header: store answers, store them sealed (they carry a secret), or ignore it. */
export type IdempotencyPolicy = "store" | "seal" | "ignore";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Overrides the idempotency policy of a route (see src/http/idempotency.ts). */
    idempotency?: IdempotencyPolicy;
  }
}

/** Routes whose policy is not "store". A route may also say so itself with `config: { idempotency }`. */
export const ROUTE_POLICIES: Readonly<Record<string, IdempotencyPolicy>> = {
  "POST /api/v1/auth/token": "ignore",
  "POST /v1/accounts/:id/keys": "seal",
  "POST /api/v1/keys": "seal",
};

export const IDEMPOTENCY_HEADER = "idempotency-key";
export const REPLAY_HEADER = "idempotent-replayed";
export const DEFAULT_TTL_MS = 24 * 3600_000;
const KEY_SHAPE = /^[\x20-\x7e]{1,255}$/;
/** The answer headers a replay repeats; the rest (request id, rate limits, date) belong to each request. */
const STORED_HEADERS = [
  "content-type",
  "cache-control",
  "location",
  "content-language",
  "content-disposition",
];
const HKDF_SALT = "tally idempotency seal v1";
/**
 * 4xx answers not kept: a malformed request (400, wherever it is found: schema or handler; nothing ran) and
 * refusals about the credential or the moment rather than the request (401, 403, 429).
 */
const NOT_KEPT = new Set([400, 401, 403, 429]);

/** operator on /v1 routes (behind the operator key), the customer's account on /api/v1; null otherwise. */
export function defaultCaller(req: FastifyRequest): string | null {
  const route = req.routeOptions.url ?? "";
  if (route === "/v1" || route.startsWith("/v1/")) return "operator";
  const p = customerOf(req);
  return p ? `account:${p.account_id}` : null;
}

function customerOf(req: FastifyRequest): CustomerPrincipal | undefined {
  return req.customer;
}

/** Hex SHA-256 of a request: method, URL as sent, and the parsed body (canonical JSON for JSON bodies). */
export function requestHash(method: string, url: string, body: unknown): string {
  const h = createHash("sha256").update(method).update("\n").update(url).update("\n");
  if (body === undefined) h.update("none");
  else if (Buffer.isBuffer(body)) h.update("bytes:").update(body);
  else if (typeof body === "string") h.update("text:").update(body);
  else h.update("json:").update(canonical(body));
  return h.digest("hex");
}

interface RequestState {
  id: IdempotencyId;
  hash: string;
  policy: "store" | "seal";
  /** The bearer credential: what seals and opens answers that carry a secret. */
  credential: string | null;
  /** The customer credential's scopes (sorted, space-separated); null for the operator. */
  scopes: string | null;
  /** The claim token, once this request runs the operation. */
  owner?: string;
  settled?: boolean;
}

const keyError = () =>
  new TallyError("validation_error", "Idempotency-Key must be 1 to 255 printable ASCII characters", {
    field: "Idempotency-Key",
  });

/** The Fastify plugin (its hooks apply to the whole app: it is not encapsulated). */
async function idempotencyPlugin(app: FastifyInstance, opts: IdempotencyOptions): Promise<void> {
  const store: IdempotencyStore = idempotencyStoreFor(opts.store);
  const clock = opts.clock ?? systemClock;
  const ttlMs = opts.ttlMs ?? DEFAULT_TTL_MS;
  const leaseMs = opts.leaseMs ?? 60_000;
  const waitTimeoutMs = opts.waitTimeoutMs ?? 10_000;
  const sweepIntervalMs = opts.sweepIntervalMs ?? 10 * 60_000;
  const callerOf = opts.callerOf ?? defaultCaller;
  const states = new WeakMap<FastifyRequest, RequestState>();
  /** First requests running on this node, so local duplicates wake the moment the answer is stored. */
  const running = new Map<string, { done: Promise<void>; wake: () => void }>();
  const slot = (id: IdempotencyId) => JSON.stringify([id.caller, id.method, id.route, id.key]);

  // Every request passes these hooks; most carry no header. They take callbacks so that those cost no
  // promise: the work with a header runs in the async functions below.
  // After authentication (onRequest), before the body is validated: decide whether the header applies.
  app.addHook("preValidation", (req, _reply, done) => {
    if (req.method !== "POST" || req.headers[IDEMPOTENCY_HEADER] === undefined) return done();
    try {
      begin(req);
      done();
    } catch (err) {
      done(err as Error);
    }
  });
  const begin = (req: FastifyRequest): void => {
    const header = req.headers[IDEMPOTENCY_HEADER];
    const route = req.routeOptions.url;
    if (!route) return;
    const policy = req.routeOptions.config?.idempotency ?? ROUTE_POLICIES[`POST ${route}`] ?? "store";
    if (policy === "ignore") return;
    const caller = callerOf(req);
    if (caller === null) return;
    if (typeof header !== "string" || !KEY_SHAPE.test(header)) throw keyError();
    const principal = customerOf(req);
    states.set(req, {
      id: { caller, method: "POST", route, key: header },
      hash: requestHash(req.method, req.url, req.body),
      policy,
      credential: bearerOf(req),
      scopes: principal ? [...principal.scopes].map(String).sort().join(" ") : null,
    });
  };

  // After validation: a request refused before it runs leaves no record. Claim the key, replay, or wait.
  app.addHook("preHandler", (req, reply, done) => {
    const st = states.get(req);
    if (!st) return done();
    claim(req, reply, st).then(() => done(), done);
  });
  const claim = async (req: FastifyRequest, reply: FastifyReply, st: RequestState): Promise<void> => {
    const owner = randomBytes(12).toString("base64url");
    const deadline = Date.now() + waitTimeoutMs;
    let pause = 5;
    for (;;) {
      const now = clock.now();
      const r = await store.claim({
        ...st.id,
        request_hash: st.hash,
        owner,
        scopes: st.scopes,
        now,
        locked_until: now + leaseMs,
        expires_at: now + ttlMs,
      });
      if (r.claimed) {
        st.owner = owner;
        let wake!: () => void;
        const done = new Promise<void>((resolve) => (wake = resolve));
        running.set(slot(st.id), { done, wake });
        return;
      }
      const rec = r.existing;
      if (rec && rec.request_hash !== st.hash)
        throw new TallyError(
          "idempotency_conflict",
          "this Idempotency-Key was already used with a different request (another body or URL)",
          { field: "Idempotency-Key" },
        );
      if (rec?.state === "done" && rec.answer) return replay(reply, rec, rec.answer, st);
      const left = deadline - Date.now();
      if (left <= 0) {
        void reply.header("retry-after", "1");
        throw new TallyError(
          "idempotency_conflict",
          "a request with this Idempotency-Key is still in progress; retry it later",
          { field: "Idempotency-Key", in_progress: true },
        );
      }
      // Pending elsewhere (or just released): wait for the answer, then look again.
      await waitFor(running.get(slot(st.id))?.done, Math.min(pause, left));
      pause = Math.min(pause * 2, 200);
    }
  };

  const settle = async (req: FastifyRequest, st: RequestState, answer: StoredAnswer | null) => {
    st.settled = true;
    const owner = st.owner!;
    try {
      if (answer === null) await store.release(st.id, owner);
      else if (!(await store.complete(st.id, owner, answer, clock.now() + ttlMs)))
        req.log.warn({ key: st.id.key, route: st.id.route }, "idempotency lease lost before the answer");
    } catch (err) {
      req.log.error({ err }, "could not store the answer of an idempotent request");
      await store.release(st.id, owner).catch(() => {});
    } finally {
      const s = running.get(slot(st.id));
      running.delete(slot(st.id));
      s?.wake();
    }
  };

  // Before the answer leaves: keep it, so a retry that follows the answer finds it.
  app.addHook("onSend", (req, reply, payload, done) => {
    const st = states.get(req);
    if (!st?.owner || st.settled) return done(null, payload);
    settle(req, st, answerOf(reply, payload, st, req)).then(() => done(null, payload), done);
  });

  // A request that ended without onSend (a hijacked reply) frees its key. A client that goes away does
  // not: its handler still runs to the end and onSend still keeps the answer, for the client's retry.
  app.addHook("onResponse", (req, _reply, done) => {
    const st = states.get(req);
    if (!st?.owner || st.settled) return done();
    settle(req, st, null).then(() => done(), done);
  });

  if (sweepIntervalMs > 0) {
    const timer = setInterval(() => {
      store.sweep(clock.now()).catch((err: unknown) => app.log.warn({ err }, "idempotency sweep failed"));
    }, sweepIntervalMs);
    timer.unref();
    app.addHook("onClose", async () => clearInterval(timer));
  }
}

/** Not encapsulated: its hooks see every route registered after it. */
export const idempotency = Object.assign(idempotencyPlugin, {
  [Symbol.for("skip-override")]: true,
  [Symbol.for("fastify.display-name")]: "tally-idempotency",
});

function replay(
  reply: FastifyReply,
  rec: IdempotencyRecord,
  answer: StoredAnswer,
  st: RequestState,
): FastifyReply {
  if (rec.scopes !== null) {
    const mine = new Set((st.scopes ?? "").split(" "));
    const missing = rec.scopes.split(" ").filter((s) => s && !mine.has(s));
    if (missing.length > 0)
      throw new TallyError(
        "forbidden",
        `this credential lacks the "${missing[0]}" scope of the one that made the first request`,
        { field: "authorization", required_scope: missing[0] },
      );
  }
  let body: string | Buffer;
  if (answer.body_encoding === "sealed") {
    const opened = st.credential === null ? null : unseal(answer.body, st.credential, rec);
    if (opened === null)
      throw new TallyError(
        "idempotency_conflict",
        "the first answer to this Idempotency-Key holds a secret and is replayed only to the credential that made the request",
        { field: "Idempotency-Key" },
      );
    body = opened;
  } else body = answer.body_encoding === "base64" ? Buffer.from(answer.body, "base64") : answer.body;
  void reply.code(answer.status);
  for (const [name, value] of Object.entries(answer.headers)) void reply.header(name, value);
  void reply.header(REPLAY_HEADER, "true");
  return reply.send(body);
}

/** The answer to keep, or null when it must not be kept (5xx, 429, a stream, a secret with no credential). */
function answerOf(
  reply: FastifyReply,
  payload: unknown,
  st: RequestState,
  req: FastifyRequest,
): StoredAnswer | null {
  const status = reply.statusCode;
  if (status >= 500 || NOT_KEPT.has(status)) return null;
  let bytes: Buffer | null;
  if (payload === null || payload === undefined) bytes = Buffer.alloc(0);
  else if (typeof payload === "string") bytes = Buffer.from(payload, "utf8");
  else if (Buffer.isBuffer(payload)) bytes = payload;
  else bytes = null;
  if (bytes === null) {
    req.log.warn({ route: st.id.route }, "a streamed answer cannot be kept for Idempotency-Key");
    return null;
  }
  const headers: Record<string, string> = {};
  for (const name of STORED_HEADERS) {
    const v = reply.getHeader(name);
    if (v !== undefined) headers[name] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  const secret = st.policy === "seal" || /\bno-store\b/i.test(headers["cache-control"] ?? "");
  if (secret) {
    if (st.credential === null) return null;
    const rec = { ...st.id, request_hash: st.hash };
    return { status, headers, body: seal(bytes, st.credential, rec), body_encoding: "sealed" };
  }
  const text = typeof payload === "string" ? payload : bytes.toString("utf8");
  // Text that round-trips and holds no NUL (PostgreSQL TEXT cannot) is kept as is; other bytes as base64.
  if (!text.includes("\u0000") && Buffer.from(text, "utf8").equals(bytes))
    return { status, headers, body: text, body_encoding: "utf8" };
  return { status, headers, body: bytes.toString("base64"), body_encoding: "base64" };
}

function bearerOf(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== "string") return null;
  const m = /^Bearer\s+(\S+)$/i.exec(h.trim());
  return m ? m[1]! : null;
}

// ---------- sealing: AES-256-GCM under HKDF(credential), bound to the record and the request ----------

function sealKey(credential: string, rec: IdempotencyId): Buffer {
  const info = canonical([rec.caller, rec.method, rec.route, rec.key]);
  return Buffer.from(hkdfSync("sha256", credential, HKDF_SALT, info, 32));
}

function seal(plain: Buffer, credential: string, rec: IdempotencyId & { request_hash: string }): string {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", sealKey(credential, rec), iv);
  c.setAAD(Buffer.from(rec.request_hash));
  const ct = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), ct]).toString("base64");
}

function unseal(sealed: string, credential: string, rec: IdempotencyRecord): Buffer | null {
  try {
    const raw = Buffer.from(sealed, "base64");
    const d = createDecipheriv("aes-256-gcm", sealKey(credential, rec), raw.subarray(0, 12));
    d.setAAD(Buffer.from(rec.request_hash));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
  } catch {
    return null;
  }
}

function waitFor(done: Promise<void> | undefined, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void done?.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
