import type pg from "pg";
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

/** Customer credentials on the PostgreSQL store's pool. */
export class PostgresAuthStore implements AuthStore {
  constructor(private readonly pool: pg.Pool) {}

  async insertKey(k: NewApiKey): Promise<void> {
    await this.pool.query(
      `INSERT INTO api_keys (id, account_id, name, prefix, secret_sha256, scopes, created_by, created_at, last_used_at, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
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
      ],
    );
  }

  async findKeyBySecretHash(secretSha256: string): Promise<ApiKeyRecord | null> {
    const { rows } = await this.pool.query("SELECT * FROM api_keys WHERE secret_sha256 = $1", [secretSha256]);
    return rows[0] ? rowToKey(rows[0]) : null;
  }

  async getKey(id: string): Promise<ApiKeyRecord | null> {
    const { rows } = await this.pool.query("SELECT * FROM api_keys WHERE id = $1", [id]);
    return rows[0] ? rowToKey(rows[0]) : null;
  }

  async listKeys(accountId: string, cursor: string | undefined, limit: number): Promise<Page<ApiKeyRecord>> {
    const after = decodeIdCursor(cursor);
    const { rows } =
      after === null
        ? await this.pool.query("SELECT * FROM api_keys WHERE account_id = $1 ORDER BY id LIMIT $2", [
            accountId,
            limit + 1,
          ])
        : await this.pool.query(
            "SELECT * FROM api_keys WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            [accountId, after, limit + 1],
          );
    const data = rows.slice(0, limit).map(rowToKey);
    return { data, next_cursor: rows.length > limit ? encodeCursor(data[data.length - 1]!.id) : null };
  }

  async countActiveKeys(accountId: string): Promise<number> {
    const { rows } = await this.pool.query(
      "SELECT COUNT(*) AS n FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL",
      [accountId],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async revokeKey(id: string, at: number): Promise<ApiKeyRecord | null> {
    await this.pool.query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", [
      at,
      id,
    ]);
    return this.getKey(id);
  }

  async touchKey(id: string, at: number, minIntervalMs: number): Promise<void> {
    await this.pool.query(
      "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
      [at, id, at - minIntervalMs],
    );
  }

  async insertUser(u: CustomerUserWithHash): Promise<boolean> {
    const r = await this.pool.query(
      `INSERT INTO customer_users (id, account_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (email) DO NOTHING`,
      [u.id, u.account_id, u.email, u.password_hash, u.created_at],
    );
    return r.rowCount === 1;
  }

  async findUserByEmail(email: string): Promise<CustomerUserWithHash | null> {
    const { rows } = await this.pool.query("SELECT * FROM customer_users WHERE email = $1", [email]);
    return rows[0] ? rowToUser(rows[0]) : null;
  }

  async listUsers(accountId: string): Promise<CustomerUserRecord[]> {
    const { rows } = await this.pool.query("SELECT * FROM customer_users WHERE account_id = $1 ORDER BY id", [
      accountId,
    ]);
    return rows.map((r) => withoutHash(rowToUser(r)));
  }
}
