import type Database from "better-sqlite3";
import type { SqliteStore } from "./store.ts";
import {
  DEFAULT_SWEEP_LIMIT,
  rowToIdempotency,
  type ClaimResult,
  type IdempotencyId,
  type IdempotencyRecord,
  type IdempotencyStore,
  type NewClaim,
  type StoredAnswer,
} from "../idempotency-store.ts";

type Row = Record<string, unknown>;
type Stmt = Database.Statement<unknown[], Row>;

const PK = "caller = ? AND method = ? AND route = ? AND idem_key = ?";
const pk = (id: IdempotencyId) => [id.caller, id.method, id.route, id.key];

/**
 * Idempotency records in the SQLite store: reads on its connection (statements prepared once), writes
 * through `writeSql`, so with a writer thread they share its commits and never block the event loop.
 */
export class SqliteIdempotencyStore implements IdempotencyStore {
  private readonly stmts = new Map<string, Stmt>();
  private readonly db: Database.Database;

  constructor(private readonly store: SqliteStore) {
    this.db = store.db;
  }

  private s(sql: string): Stmt {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql) as Stmt;
      this.stmts.set(sql, st);
    }
    return st;
  }

  async claim(c: NewClaim): Promise<ClaimResult> {
    const { row: won } = await this.store.writeSql(
      `INSERT INTO idempotency_keys
         (caller, method, route, idem_key, request_hash, state, owner, scopes, created_at, locked_until, expires_at)
       VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)
       ON CONFLICT (caller, method, route, idem_key) DO UPDATE SET
         request_hash = excluded.request_hash, state = 'pending', owner = excluded.owner, scopes = excluded.scopes, status = NULL,
         headers = NULL, body = NULL, body_encoding = NULL, created_at = excluded.created_at,
         locked_until = excluded.locked_until, expires_at = excluded.expires_at
       WHERE idempotency_keys.expires_at <= ?
          OR (idempotency_keys.state = 'pending' AND idempotency_keys.locked_until <= ?
              AND idempotency_keys.request_hash = excluded.request_hash)
       RETURNING owner`,
      [...pk(c), c.request_hash, c.owner, c.scopes, c.now, c.locked_until, c.expires_at, c.now, c.now],
      "get",
    );
    if (won) return { claimed: true };
    return { claimed: false, existing: await this.get(c) };
  }

  async get(id: IdempotencyId): Promise<IdempotencyRecord | null> {
    const r = this.s(`SELECT * FROM idempotency_keys WHERE ${PK}`).get(...pk(id));
    return r ? rowToIdempotency(r) : null;
  }

  async complete(id: IdempotencyId, owner: string, a: StoredAnswer, expiresAt: number): Promise<boolean> {
    const r = await this.store.writeSql(
      `UPDATE idempotency_keys SET state = 'done', status = ?, headers = ?, body = ?, body_encoding = ?,
         expires_at = ?
       WHERE ${PK} AND owner = ? AND state = 'pending'`,
      [a.status, JSON.stringify(a.headers), a.body, a.body_encoding, expiresAt, ...pk(id), owner],
    );
    return r.changes === 1;
  }

  async release(id: IdempotencyId, owner: string): Promise<boolean> {
    const r = await this.store.writeSql(
      `DELETE FROM idempotency_keys WHERE ${PK} AND owner = ? AND state = 'pending'`,
      [...pk(id), owner],
    );
    return r.changes === 1;
  }

  async sweep(now: number, limit = DEFAULT_SWEEP_LIMIT): Promise<number> {
    const r = await this.store.writeSql(
      `DELETE FROM idempotency_keys WHERE rowid IN
         (SELECT rowid FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)`,
      [now, limit],
    );
    return r.changes;
  }
}
