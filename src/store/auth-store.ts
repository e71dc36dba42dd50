import type { Page, Store } from "./types.ts";
import type { SqliteStore } from "./sqlite/store.ts";
import type { PostgresStore } from "./postgres/store.ts";
import { SqliteAuthStore } from "./sqlite/auth-store.ts";
import { PostgresAuthStore } from "./postgres/auth-store.ts";

export const SCOPES = ["read", "usage", "manage"] as const;
export type Scope = (typeof SCOPES)[number];

/** A customer API key as stored, without its secret (only its SHA-256 is kept). */
export interface ApiKeyRecord {
  id: string;
  account_id: string;
  name: string;
  /** The first characters of the secret, for people to tell keys apart ("tly_live_AbCd1234"). */
  prefix: string;
  scopes: Scope[];
  /** "operator", "key:<id>" or "user:<id>". */
  created_by: string | null;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface NewApiKey extends ApiKeyRecord {
  /** Lowercase hex SHA-256 of the whole secret. */
  secret_sha256: string;
}

export interface CustomerUserRecord {
  id: string;
  account_id: string;
  /** Lowercased. Unique across all accounts: a login names no account. */
  email: string;
  created_at: number;
}

export interface CustomerUserWithHash extends CustomerUserRecord {
  /** `scrypt$N$r$p$<salt b64url>$<hash b64url>`. */
  password_hash: string;
}

/** Storage of customer credentials, over the store's own connection (SQLite) or pool (PostgreSQL). */
export interface AuthStore {
  insertKey(key: NewApiKey): Promise<void>;
  /** The key whose secret hashes to this, revoked or not. */
  findKeyBySecretHash(secretSha256: string): Promise<ApiKeyRecord | null>;
  getKey(id: string): Promise<ApiKeyRecord | null>;
  /** An account's keys (revoked ones too), oldest first, by id. */
  listKeys(accountId: string, cursor: string | undefined, limit: number): Promise<Page<ApiKeyRecord>>;
  countActiveKeys(accountId: string): Promise<number>;
  /** Sets revoked_at unless already set; returns the key as it now is, or null if there is none. */
  revokeKey(id: string, at: number): Promise<ApiKeyRecord | null>;
  /** Sets last_used_at = at unless it is already later than `at - minIntervalMs` (one write per interval). */
  touchKey(id: string, at: number, minIntervalMs: number): Promise<void>;
  /** false when the email is taken (by any account). */
  insertUser(user: CustomerUserWithHash): Promise<boolean>;
  findUserByEmail(email: string): Promise<CustomerUserWithHash | null>;
  listUsers(accountId: string): Promise<CustomerUserRecord[]>;
}

const cache = new WeakMap<Store, AuthStore>();

/** The AuthStore of a store (one per store, so prepared statements are reused). */
export function authStoreFor(store: Store): AuthStore {
  let a = cache.get(store);
  if (!a) {
    if (store.dialect === "sqlite") a = new SqliteAuthStore((store as SqliteStore).db);
    else if (store.dialect === "postgres") a = new PostgresAuthStore((store as PostgresStore).pool);
    else throw new Error(`no auth store for dialect ${String((store as Store).dialect)}`);
    cache.set(store, a);
  }
  return a;
}

export function encodeScopes(scopes: readonly Scope[]): string {
  return SCOPES.filter((s) => scopes.includes(s)).join(" ");
}

export function decodeScopes(text: string): Scope[] {
  const parts = new Set(text.split(" "));
  return SCOPES.filter((s) => parts.has(s));
}

type Row = Record<string, unknown>;

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function rowToKey(r: Row): ApiKeyRecord {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    name: String(r.name),
    prefix: String(r.prefix),
    scopes: decodeScopes(String(r.scopes)),
    created_by: r.created_by == null ? null : String(r.created_by),
    created_at: num(r.created_at),
    last_used_at: numOrNull(r.last_used_at),
    revoked_at: numOrNull(r.revoked_at),
  };
}

export function rowToUser(r: Row): CustomerUserWithHash {
  return {
    id: String(r.id),
    account_id: String(r.account_id),
    email: String(r.email),
    password_hash: String(r.password_hash),
    created_at: num(r.created_at),
  };
}

export function withoutHash(u: CustomerUserWithHash): CustomerUserRecord {
  return { id: u.id, account_id: u.account_id, email: u.email, created_at: u.created_at };
}
