import type pg from "pg";
import { named } from "../store/postgres/named.ts";
import { decodeIdCursor, encodeCursor } from "../store/types.ts";
import {
  decodeSession,
  encodeSession,
  type SessionQuery,
  type SessionRecord,
  type SessionStore,
} from "./types.ts";

type Row = { data: string };
type Pending = {
  s: SessionRecord;
  expectedVersion: number;
  resolve: (ok: boolean) => void;
  reject: (err: unknown) => void;
};
const MAX_BATCH = 1000;

/** Sessions on the PostgreSQL store's pool. */
export class PostgresSessionStore implements SessionStore {
  private pending: Pending[] = [];
  private flushing = false;

  constructor(private readonly pool: pg.Pool) {}

  async insert(s: SessionRecord, maxConcurrent: number | null): Promise<boolean> {
    const sql =
      "INSERT INTO sessions (id, account_id, status, valid_until, version, created_at, data) VALUES ($1,$2,$3,$4,$5,$6,$7)";
    const params = [s.id, s.account_id, s.status, s.valid_until, s.version, s.created_at, encodeSession(s)];
    if (maxConcurrent === null) {
      await this.pool.query(named(sql, params));
      return true;
    }
    // The count and the insert under one per-account lock, so two nodes cannot both take the last place.
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`sessions:${s.account_id}`]);
      const { rows } = await c.query<{ n: string }>(
        "SELECT COUNT(*) AS n FROM sessions WHERE account_id = $1 AND status = 'active'",
        [s.account_id],
      );
      if (Number(rows[0]!.n) >= maxConcurrent) {
        await c.query("ROLLBACK");
        return false;
      }
      await c.query(named(sql, params));
      await c.query("COMMIT");
      return true;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  async countActive(accountId: string): Promise<number> {
    const { rows } = await this.pool.query<{ n: string }>(
      "SELECT COUNT(*) AS n FROM sessions WHERE account_id = $1 AND status = 'active'",
      [accountId],
    );
    return Number(rows[0]!.n);
  }

  async get(id: string): Promise<SessionRecord | null> {
    // Prepared: a key lookup, whose plan does not depend on the table's size (./named.ts).
    const { rows } = await this.pool.query<Row>(named("SELECT data FROM sessions WHERE id = $1", [id]));
    return rows[0] ? decodeSession(rows[0].data) : null;
  }

  /**
   * Conditional writes are queued and sent together: one statement and one commit for every write queued
   * while the previous batch was in flight (thousands of live sessions update every few seconds).
   */
  update(s: SessionRecord, expectedVersion: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.push({ s, expectedVersion, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        // One write per session in a statement (a second one for the same session waits for the next).
        const seen = new Set<string>();
        const batch: Pending[] = [];
        const later: Pending[] = [];
        for (const u of this.pending.splice(0, MAX_BATCH)) {
          if (seen.has(u.s.id)) later.push(u);
          else {
            seen.add(u.s.id);
            batch.push(u);
          }
        }
        this.pending.unshift(...later);
        try {
          const { rows } = await this.pool.query<{ id: string }>(
            `UPDATE sessions s SET status = v.status, valid_until = v.valid_until, version = v.version, data = v.data
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::int[])
               AS v(id, status, valid_until, version, data, expected)
             WHERE s.id = v.id AND s.version = v.expected
             RETURNING s.id`,
            [
              batch.map((u) => u.s.id),
              batch.map((u) => u.s.status),
              batch.map((u) => u.s.valid_until),
              batch.map((u) => u.s.version),
              batch.map((u) => encodeSession(u.s)),
              batch.map((u) => u.expectedVersion),
            ],
          );
          const ok = new Set(rows.map((r) => r.id));
          for (const u of batch) u.resolve(ok.has(u.s.id));
        } catch (err) {
          for (const u of batch) u.reject(err);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  async listActive(accountId: string): Promise<SessionRecord[]> {
    const { rows } = await this.pool.query<Row>(
      "SELECT data FROM sessions WHERE account_id = $1 AND status = 'active' ORDER BY id",
      [accountId],
    );
    return rows.map((r) => decodeSession(r.data));
  }

  async listDueOf(accountId: string, now: number): Promise<SessionRecord[]> {
    const { rows } = await this.pool.query<Row>(
      "SELECT data FROM sessions WHERE account_id = $1 AND status = 'active' AND valid_until <= $2 ORDER BY id LIMIT 1000",
      [accountId, now],
    );
    return rows.map((r) => decodeSession(r.data));
  }

  async listDue(now: number, limit: number): Promise<SessionRecord[]> {
    const { rows } = await this.pool.query<Row>(
      "SELECT data FROM sessions WHERE status = 'active' AND valid_until <= $1 ORDER BY valid_until LIMIT $2",
      [now, limit],
    );
    return rows.map((r) => decodeSession(r.data));
  }

  async list(q: SessionQuery): Promise<{ data: SessionRecord[]; next_cursor: string | null }> {
    const after = decodeIdCursor(q.cursor) ?? "";
    const { rows } = q.status
      ? await this.pool.query<Row>(
          "SELECT data FROM sessions WHERE account_id = $1 AND status = $2 AND id > $3 ORDER BY id LIMIT $4",
          [q.account_id, q.status, after, q.limit + 1],
        )
      : await this.pool.query<Row>(
          "SELECT data FROM sessions WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
          [q.account_id, after, q.limit + 1],
        );
    const data = rows.slice(0, q.limit).map((r) => decodeSession(r.data));
    return { data, next_cursor: rows.length > q.limit ? encodeCursor(data[data.length - 1]!.id) : null };
  }
}
