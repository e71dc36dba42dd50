import type { Store } from "./types.ts";
import type { SqliteStore } from "./sqlite/store.ts";
import type { PostgresStore } from "./postgres/store.ts";
import { SqliteIdempotencyStore } from "./sqlite/idempotency-store.ts";
import { PostgresIdempotencyStore } from "./postgres/idempotency-store.ts";

/** What names one idempotency record: who called, which operation, and the client's key. */
export interface IdempotencyId {
  /** "operator" or "account:<id>". */
  caller: string;
  method: string;
  /** The route pattern, e.g. "/v1/accounts/:id/grants" (the concrete URL is in the request hash). */
  route: string;
  /** The Idempotency-Key header as sent. */
  key: string;
}

/** How a stored body is kept: as text, as base64 bytes, or sealed (AES-256-GCM; it carried a secret). */
export type BodyEncoding = "utf8" | "base64" | "sealed";

/** The first answer to a request, as it will be replayed. */
export interface StoredAnswer {
  status: number;
  /** Lowercase header names. */
  headers: Record<string, string>;
  body: string;
  body_encoding: BodyEncoding;
}

export interface IdempotencyRecord extends IdempotencyId {
  /** Hex SHA-256 of the request (method, URL, body). */
  request_hash: string;
  /** pending: the first request is running (under a lease until `locked_until`); done: `answer` is final. */
  state: "pending" | "done";
  /** The claim token of the request that runs (or ran) it. */
  owner: string;
  /** The scopes of the customer credential that made the first request (space-separated); null: operator. */
  scopes: string | null;
  answer: StoredAnswer | null;
  created_at: number;
  locked_until: number;
  /** From this instant the record is forgotten: the key may be used again for anything. */
  expires_at: number;
}

export interface NewClaim extends IdempotencyId {
  request_hash: string;
  owner: string;
  scopes: string | null;
  now: number;
  /** A pending record whose lease has run out may be taken over by a request with the same hash. */
  locked_until: number;
  expires_at: number;
}

export type ClaimResult = { claimed: true } | { claimed: false; existing: IdempotencyRecord | null };

/**
 * Storage of idempotency records, over the store's own connection (SQLite) or pool (PostgreSQL). Every
 * method is one atomic statement, so any number of API nodes on one database agree on who runs a request.
 */
export interface IdempotencyStore {
  /**
   * Makes `c.owner` the runner of this request: inserts a pending record, or replaces one that has expired,
   * or takes over a pending one of the same request hash whose lease ran out. Otherwise returns the record
   * in force (null if it vanished meanwhile: try again).
   */
  claim(c: NewClaim): Promise<ClaimResult>;
  get(id: IdempotencyId): Promise<IdempotencyRecord | null>;
  /** Stores the answer of a pending record still owned by `owner`; false if it is not (lease lost). */
  complete(id: IdempotencyId, owner: string, answer: StoredAnswer, expiresAt: number): Promise<boolean>;
  /** Deletes a pending record still owned by `owner` (the request left no answer to keep). */
  release(id: IdempotencyId, owner: string): Promise<boolean>;
  /** Deletes up to `limit` records expired at `now`; returns how many. */
  sweep(now: number, limit?: number): Promise<number>;
}

const cache = new WeakMap<Store, IdempotencyStore>();

/** The IdempotencyStore of a store (one per store, so prepared statements are reused). */
export function idempotencyStoreFor(store: Store): IdempotencyStore {
  let s = cache.get(store);
  if (!s) {
    if (store.dialect === "sqlite") s = new SqliteIdempotencyStore(store as SqliteStore);
    else if (store.dialect === "postgres") s = new PostgresIdempotencyStore((store as PostgresStore).pool);
    else throw new Error(`no idempotency store for dialect ${String((store as Store).dialect)}`);
    cache.set(store, s);
  }
  return s;
}

type Row = Record<string, unknown>;

export function rowToIdempotency(r: Row): IdempotencyRecord {
  const done = String(r.state) === "done";
  return {
    caller: String(r.caller),
    method: String(r.method),
    route: String(r.route),
    key: String(r.idem_key),
    request_hash: String(r.request_hash),
    state: done ? "done" : "pending",
    owner: String(r.owner),
    scopes: r.scopes == null ? null : String(r.scopes),
    answer:
      done && r.status != null
        ? {
            status: Number(r.status),
            headers: JSON.parse(String(r.headers ?? "{}")) as Record<string, string>,
            body: String(r.body ?? ""),
            body_encoding: String(r.body_encoding ?? "utf8") as BodyEncoding,
          }
        : null,
    created_at: Number(r.created_at),
    locked_until: Number(r.locked_until),
    expires_at: Number(r.expires_at),
  };
}

export const DEFAULT_SWEEP_LIMIT = 10_000;
