import type pg from "pg";
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

const pk = (id: IdempotencyId) => [id.caller, id.method, id.route, id.key];

/** Idempotency records on the PostgreSQL store's pool; each method is one statement (its own transaction). */
export class PostgresIdempotencyStore implements IdempotencyStore {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * One statement, committed asynchronously (`synchronous_commit = off` for this transaction only): a claim
   * need not wait for its own WAL flush. The command it guards commits after it, synchronously, and flushing
   * that commit flushes the WAL before it, claim included; a claim lost in a crash guarded nothing durable,
   * and the retry claims again. Saves one WAL flush wait per idempotent request.
   */
  async claim(c: NewClaim): Promise<ClaimResult> {
    const { rows } = await this.pool.query(
      `INSERT INTO idempotency_keys
         (caller, method, route, idem_key, request_hash, state, owner, scopes, created_at, locked_until, expires_at)
       SELECT $1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10
         FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
       ON CONFLICT (caller, method, route, idem_key) DO UPDATE SET
         request_hash = EXCLUDED.request_hash, state = 'pending', owner = EXCLUDED.owner, scopes = EXCLUDED.scopes, status = NULL,
         headers = NULL, body = NULL, body_encoding = NULL, created_at = EXCLUDED.created_at,
         locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at
       WHERE idempotency_keys.expires_at <= $8
          OR (idempotency_keys.state = 'pending' AND idempotency_keys.locked_until <= $8
              AND idempotency_keys.request_hash = EXCLUDED.request_hash)
       RETURNING owner`,
      [...pk(c), c.request_hash, c.owner, c.scopes, c.now, c.locked_until, c.expires_at],
    );
    if (rows.length === 1) return { claimed: true };
    return { claimed: false, existing: await this.get(c) };
  }

  async get(id: IdempotencyId): Promise<IdempotencyRecord | null> {
    const { rows } = await this.pool.query(
      "SELECT * FROM idempotency_keys WHERE caller = $1 AND method = $2 AND route = $3 AND idem_key = $4",
      pk(id),
    );
    return rows[0] ? rowToIdempotency(rows[0]) : null;
  }

  async complete(id: IdempotencyId, owner: string, a: StoredAnswer, expiresAt: number): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE idempotency_keys SET state = 'done', status = $6, headers = $7, body = $8, body_encoding = $9,
         expires_at = $10
       WHERE caller = $1 AND method = $2 AND route = $3 AND idem_key = $4 AND owner = $5 AND state = 'pending'`,
      [...pk(id), owner, a.status, JSON.stringify(a.headers), a.body, a.body_encoding, expiresAt],
    );
    return r.rowCount === 1;
  }

  async release(id: IdempotencyId, owner: string): Promise<boolean> {
    const r = await this.pool.query(
      `DELETE FROM idempotency_keys
       WHERE caller = $1 AND method = $2 AND route = $3 AND idem_key = $4 AND owner = $5 AND state = 'pending'`,
      [...pk(id), owner],
    );
    return r.rowCount === 1;
  }

  async sweep(now: number, limit = DEFAULT_SWEEP_LIMIT): Promise<number> {
    const r = await this.pool.query(
      `DELETE FROM idempotency_keys WHERE ctid IN
         (SELECT ctid FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2)`,
      [now, limit],
    );
    return r.rowCount ?? 0;
  }
}
