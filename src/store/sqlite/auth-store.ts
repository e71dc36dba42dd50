import type Database from "better-sqlite3";
import {
  encodeScopes,
  rowToKey,
  rowToUser,
  withoutHash,
  type ApiKeyRecord,
  type AuthStore,
  type CustomerUserRecord,
  type CustomerUserWithHash,
  type NewApiKey,
} from "../auth-store.ts";
import { decodeIdCursor, encodeCursor, type Page } from "../types.ts";

type Row = Record<string, unknown>;
type Stmt = Database.Statement<unknown[], Row>;

/** Customer credentials on the SQLite store's connection (statements prepared once). */
export class SqliteAuthStore implements AuthStore {
  private readonly stmts = new Map<string, Stmt>();

  constructor(private readonly db: Database.Database) {}

  private s(sql: string): Stmt {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql) as Stmt;
      this.stmts.set(sql, st);
    }
    return st;
  }

  async insertKey(k: NewApiKey): Promise<void> {
    this.s(
      `INSERT INTO api_keys (id, account_id, name, prefix, secret_sha256, scopes, created_by, created_at, last_used_at, revoked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      k.id,
      k.account_id,
      k.name,
      k.prefix,
      k.secret_sha256,
      encodeScopes(k.scopes),
      k.created_by,
      k.created_at,
      k.last_used_at,
      k.revoked_at,
    );
  }

  async findKeyBySecretHash(secretSha256: string): Promise<ApiKeyRecord | null> {
    const r = this.s("SELECT * FROM api_keys WHERE secret_sha256 = ?").get(secretSha256);
    return r ? rowToKey(r) : null;
  }

  async getKey(id: string): Promise<ApiKeyRecord | null> {
    const r = this.s("SELECT * FROM api_keys WHERE id = ?").get(id);
    return r ? rowToKey(r) : null;
  }

  async listKeys(accountId: string, cursor: string | undefined, limit: number): Promise<Page<ApiKeyRecord>> {
    const after = decodeIdCursor(cursor);
    const rows =
      after === null
        ? this.s("SELECT * FROM api_keys WHERE account_id = ? ORDER BY id LIMIT ?").all(accountId, limit + 1)
        : this.s("SELECT * FROM api_keys WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?").all(
            accountId,
            after,
            limit + 1,
          );
    const data = rows.slice(0, limit).map(rowToKey);
    return { data, next_cursor: rows.length > limit ? encodeCursor(data[data.length - 1]!.id) : null };
  }

  async countActiveKeys(accountId: string): Promise<number> {
    const r = this.s("SELECT COUNT(*) AS n FROM api_keys WHERE account_id = ? AND revoked_at IS NULL").get(
      accountId,
    );
    return Number(r?.n ?? 0);
  }

  async revokeKey(id: string, at: number): Promise<ApiKeyRecord | null> {
    this.s("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(at, id);
    return this.getKey(id);
  }

  async touchKey(id: string, at: number, minIntervalMs: number): Promise<void> {
    this.s(
      "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
    ).run(at, id, at - minIntervalMs);
  }

  async insertUser(u: CustomerUserWithHash): Promise<boolean> {
    const r = this.s(
      `INSERT INTO customer_users (id, account_id, email, password_hash, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (email) DO NOTHING`,
    ).run(u.id, u.account_id, u.email, u.password_hash, u.created_at);
    return r.changes === 1;
  }

  async findUserByEmail(email: string): Promise<CustomerUserWithHash | null> {
    const r = this.s("SELECT * FROM customer_users WHERE email = ?").get(email);
    return r ? rowToUser(r) : null;
  }

  async listUsers(accountId: string): Promise<CustomerUserRecord[]> {
    return this.s("SELECT * FROM customer_users WHERE account_id = ? ORDER BY id")
      .all(accountId)
      .map((r) => withoutHash(rowToUser(r)));
  }
}
